"""The output loop shared by the reference scripts: one JSON object per input path, per line."""
import json


def report_each(describe, paths):
    for path in paths:
        try:
            out = describe(path)
        except Exception as error:  # report, don't stop: one file's failure is its own result
            out = {"path": path, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(out), flush=True)
