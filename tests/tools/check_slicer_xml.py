#!/usr/bin/env python3
"""Checks a Slicer Execution Model XML description against the rules of the module description
schema (CTK's ctkCmdLineModule.xsd, which Slicer's parser follows): element names and order,
parameter types, flags or index (none for a return parameter, whose channel is output),
channels. Prints 'ok' or one problem per line; exit 1 on any.

usage: check_slicer_xml.py FILE
"""
import re
import sys
import xml.etree.ElementTree as ET

EXECUTABLE_ORDER = ['category', 'title', 'description', 'version', 'documentation-url', 'license',
                    'contributor', 'acknowledgements']
REQUIRED = {'title', 'description'}
SCALARS = {'integer', 'float', 'double'}
VECTORS = {'integer-vector', 'float-vector', 'double-vector'}
ENUMS = {'integer-enumeration', 'float-enumeration', 'double-enumeration', 'string-enumeration'}
PARAMETER_TYPES = ({'boolean', 'string', 'directory', 'string-vector', 'point', 'region', 'file', 'image',
                    'geometry', 'transform', 'table', 'measurement'} | SCALARS | VECTORS | ENUMS)
IMAGE_TYPES = {'scalar', 'label', 'tensor', 'diffusion-weighted', 'vector', 'model', 'any'}
# Parameters without flag or index whose channel is output are return parameters
# (ModuleParameter::IsReturnParameter); only simple values travel that way.
RETURNABLE = {'boolean', 'string'} | SCALARS | VECTORS | ENUMS
NEEDS_CHANNEL = {'file', 'image', 'directory', 'geometry', 'transform', 'table', 'measurement'}


def check(path):
    problems = []
    root = ET.parse(path).getroot()
    if root.tag != 'executable':
        return ['root element is <%s>, not <executable>' % root.tag]
    children = [c.tag for c in root]
    header = [t for t in children if t != 'parameters']
    positions = [EXECUTABLE_ORDER.index(t) if t in EXECUTABLE_ORDER else -1 for t in header]
    if -1 in positions:
        problems.append('unknown element(s) in <executable>: %s' % [t for t in header if t not in EXECUTABLE_ORDER])
    if positions != sorted(positions) or len(set(header)) != len(header):
        problems.append('<executable> children out of order or repeated: %s' % header)
    if children and 'parameters' in children:
        first = children.index('parameters')
        if any(t != 'parameters' for t in children[first:]):
            problems.append('<parameters> groups must come after the module description')
    else:
        problems.append('no <parameters> group')
    for tag in REQUIRED:
        if tag not in header:
            problems.append('<%s> is required' % tag)
    names, indices = set(), []
    for group in root.findall('parameters'):
        tags = [c.tag for c in group]
        if tags[:2] != ['label', 'description']:
            problems.append('<parameters> must start with <label> then <description>, has %s' % tags[:2])
        if group.get('advanced') not in (None, 'true', 'false'):
            problems.append('advanced= must be true or false')
        params = [c for c in group][2:]
        if not params:
            problems.append('a <parameters> group needs at least one parameter')
        for p in params:
            problems += check_parameter(p, names, indices)
    if sorted(indices) != list(range(len(indices))):
        problems.append('indices must be 0, 1, ... without gaps: %s' % sorted(indices))
    return problems


def check_parameter(p, names, indices):
    problems = []
    where = '<%s>' % p.tag
    if p.tag not in PARAMETER_TYPES:
        return ['unknown parameter type %s' % where]
    tags = [c.tag for c in p]
    name = p.findtext('name')
    where = '<%s name=%s>' % (p.tag, name)
    if not tags or tags[0] != 'name' or not re.fullmatch(r'[_a-zA-Z][_a-zA-Z0-9]*', name or ''):
        problems.append('%s: first child must be a valid <name>' % where)
    if name in names:
        problems.append('%s: name is not unique' % where)
    names.add(name)
    rest = tags[1:]
    # flag [longflag] | longflag | index
    if rest[:1] == ['flag']:
        rest = rest[2:] if rest[1:2] == ['longflag'] else rest[1:]
    elif rest[:1] == ['longflag']:
        rest = rest[1:]
        if not re.fullmatch(r'-?-?[_a-zA-Z][_a-zA-Z0-9]*', p.findtext('longflag') or ''):
            problems.append('%s: bad longflag' % where)
    elif rest[:1] == ['index']:
        rest = rest[1:]
        index = int(p.findtext('index'))
        if index != 1000:
            indices.append(index)
    elif p.findtext('channel') == 'output' and p.tag in RETURNABLE:
        pass  # a return parameter: Slicer reads it back from --returnparameterfile
    else:
        problems.append('%s: needs flag, longflag or index right after name' % where)
    expected = ['description', 'label']
    if rest[:2] != expected:
        problems.append('%s: needs <description> then <label> after the flags, has %s' % (where, rest[:2]))
    rest = rest[2:]
    if rest[:1] == ['default']:
        rest = rest[1:]
    if rest[:1] == ['channel']:
        if p.findtext('channel') not in ('input', 'output'):
            problems.append('%s: channel must be input or output' % where)
        rest = rest[1:]
    elif p.tag in NEEDS_CHANNEL:
        problems.append('%s: needs a <channel>' % where)
    if p.tag in SCALARS | VECTORS and rest[:1] == ['constraints']:
        c = [x.tag for x in p.find('constraints')]
        if [t for t in c if t not in ('minimum', 'maximum', 'step')] or c != sorted(c, key=['minimum', 'maximum', 'step'].index):
            problems.append('%s: constraints must be minimum, maximum, step' % where)
        rest = rest[1:]
    if p.tag in ENUMS:
        if not rest or any(t != 'element' for t in rest):
            problems.append('%s: enumerations list <element> values' % where)
        rest = []
    if rest:
        problems.append('%s: unexpected children %s' % (where, rest))
    if p.tag == 'image' and p.get('type', 'scalar') not in IMAGE_TYPES:
        problems.append('%s: image type %s unknown' % (where, p.get('type')))
    if p.tag == 'boolean' and p.findtext('default') not in (None, 'true', 'false'):
        problems.append('%s: boolean default must be true or false' % where)
    return problems


if __name__ == '__main__':
    found = check(sys.argv[1])
    print('\n'.join(found) if found else 'ok')
    sys.exit(1 if found else 0)
