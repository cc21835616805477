#!/usr/bin/python3
"""Write an HDF5 file with h5py whose root group keeps its links in dense storage, then damage
the link storage the way the reader fuzzing (scripts/fuzz_readers.sh) found, so that an ordered
walk of the groups in libhdf5 1.10.8 frees or compares uninitialised pointers.

Bug (libhdf5 1.10.8, H5Gdense.c): for an ordered iteration (H5Lvisit/H5Literate with
H5_ITER_INC or H5_ITER_DEC) H5G__dense_iterate builds a table of links:
H5G__dense_build_table mallocs nlinks H5O_link_t entries (nlinks = record count in the
name-index v2 B-tree header, "BTHD"), then fills them by walking the B-tree and reading each
link message from the fractal heap ("FRHP"/"FHDB"). If that walk fails part way, the entries not
yet filled stay uninitialised, and H5G__dense_iterate's cleanup (H5G__link_release_table ->
H5O_msg_reset -> H5O__link_reset -> H5MM_xfree) frees their garbage `name` pointers.

Modes (--mode):
  dblock-free   flip one byte in the unused tail of the root group's link fractal-heap direct
                block (FHDB). The block's checksum no longer matches, so loading it fails before
                any link is copied: every table entry is garbage. (What the fuzzing found.)
  leaf          flip one byte inside the name-index v2 B-tree leaf (BTLF): checksum mismatch
                when the leaf is loaded, every entry garbage.
  link-version  set the version byte of the K-th link message (--link K, default 2) in the
                FHDB to 0x7f and recompute the block checksum, so the block loads but
                H5O__link_decode rejects link K: entries copied before the B-tree walk (name-hash
                order) reaches link K are valid, the rest garbage.
  nrec          (a different crash) raise the total record count in the name-index BTHD by
                --extra (checksum recomputed): the table walk succeeds but fills fewer entries
                than it allocated, and sorting the table strcmp()s the garbage names.

Usage: /usr/bin/python3 damaged_hdf5.py OUT.h5 [--mode M] [--links N] [--link K] [--extra E]
                                             [--no-track-order]
"""
import argparse
import struct
import sys

import h5py
import numpy as np


# --- Bob Jenkins' lookup3 hashlittle, as H5_checksum_lookup3 (initval 0) -------------------
def _rot(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(data, initval=0):
    M = 0xFFFFFFFF
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & M
    k = 0
    while length > 12:
        a = (a + data[k] + (data[k + 1] << 8) + (data[k + 2] << 16) + (data[k + 3] << 24)) & M
        b = (b + data[k + 4] + (data[k + 5] << 8) + (data[k + 6] << 16) + (data[k + 7] << 24)) & M
        c = (c + data[k + 8] + (data[k + 9] << 8) + (data[k + 10] << 16) + (data[k + 11] << 24)) & M
        a = (a - c) & M; a ^= _rot(c, 4); c = (c + b) & M
        b = (b - a) & M; b ^= _rot(a, 6); a = (a + c) & M
        c = (c - b) & M; c ^= _rot(b, 8); b = (b + a) & M
        a = (a - c) & M; a ^= _rot(c, 16); c = (c + b) & M
        b = (b - a) & M; b ^= _rot(a, 19); a = (a + c) & M
        c = (c - b) & M; c ^= _rot(b, 4); b = (b + a) & M
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:k + length] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & M
    b = (b + int.from_bytes(tail[4:8], "little")) & M
    c = (c + int.from_bytes(tail[8:12], "little")) & M
    c ^= b; c = (c - _rot(b, 14)) & M
    a ^= c; a = (a - _rot(c, 11)) & M
    b ^= a; b = (b - _rot(a, 25)) & M
    c ^= b; c = (c - _rot(b, 16)) & M
    a ^= c; a = (a - _rot(c, 4)) & M
    b ^= a; b = (b - _rot(a, 14)) & M
    c ^= b; c = (c - _rot(b, 24)) & M
    return c


# --- minimal readers for the structures on the path ------------------------------------------
def expect(data, offset, signature):
    if data[offset:offset + len(signature)] != signature:
        sys.exit(f"expected {signature!r} at {offset:#x}, found {bytes(data[offset:offset + 4])!r}")


def root_object_header(data):
    expect(data, 0, b"\x89HDF\r\n\x1a\n")
    version, size_offsets, size_lengths = data[8], data[9], data[10]
    if version < 2 or size_offsets != 8 or size_lengths != 8:
        sys.exit(f"superblock v{version} with {size_offsets}/{size_lengths}-byte fields is not handled")
    # v2/v3 superblock: signature 8, version, sizes, flags, base, extension, EOF, root header
    return struct.unpack_from("<Q", data, 8 + 4 + 24)[0]


def object_header_messages(data, offset):
    """(type, body offset, body size) of the messages in chunk 0 of a v2 object header."""
    expect(data, offset, b"OHDR")
    flags = data[offset + 5]
    p = offset + 6
    if flags & 0x20:
        p += 16  # times
    if flags & 0x10:
        p += 4  # attribute phase change values
    width = 1 << (flags & 3)
    size = int.from_bytes(data[p:p + width], "little")
    p += width
    end = p + size
    header = 6 if flags & 0x04 else 4  # creation order of messages tracked
    while p + header <= end:
        kind, body = data[p], struct.unpack_from("<H", data, p + 1)[0]
        yield kind, p + header, body
        p += header + body


def link_info(data, group_header):
    for kind, body, _ in object_header_messages(data, group_header):
        if kind == 0x02:  # Link Info message
            flags = data[body + 1]
            p = body + 2 + (8 if flags & 1 else 0)
            fheap, name_bt2 = struct.unpack_from("<QQ", data, p)
            return fheap, name_bt2
    sys.exit("the root group has no Link Info message (links are not in dense storage)")


def fractal_heap(data, offset):
    """Root block address, its size, and whether direct blocks carry a checksum."""
    expect(data, offset, b"FRHP")
    flags = data[offset + 9]
    p = offset + 14 + 12 * 8
    width = struct.unpack_from("<H", data, p)[0]
    start_size, max_direct = struct.unpack_from("<QQ", data, p + 2)
    max_heap_bits = struct.unpack_from("<H", data, p + 18)[0]
    root, rows = struct.unpack_from("<QH", data, p + 22)
    return root, rows, start_size, bool(flags & 2), (max_heap_bits + 7) // 8


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--mode", choices=("dblock-free", "leaf", "link-version", "nrec"), default="dblock-free")
    ap.add_argument("--links", type=int, default=12, help="datasets in the root group (> 8 for dense storage)")
    ap.add_argument("--link", type=int, default=2, help="link-version mode: which link (0-based, heap order)")
    ap.add_argument("--extra", type=int, default=1, help="nrec mode: records added to the BTHD count")
    ap.add_argument("--no-track-order", action="store_true", help="do not track link creation order")
    args = ap.parse_args()

    # 1. a small, valid file: libver='latest' (v3 superblock, v2 object headers) and more links
    #    than the compact limit (8), so the root group stores its links in a fractal heap indexed
    #    by a v2 B-tree, as netCDF-4 files do.
    with h5py.File(args.out, "w", libver="latest", track_order=not args.no_track_order) as f:
        for i in range(args.links):
            f.create_dataset(f"var{i:03d}", data=np.arange(4, dtype="f4") + i)
    data = bytearray(open(args.out, "rb").read())

    # 2. walk superblock -> root object header -> Link Info -> fractal heap -> direct block
    root = root_object_header(data)
    fheap, name_bt2 = link_info(data, root)
    block, rows, block_size, checksummed, offset_bytes = fractal_heap(data, fheap)
    if args.mode in ("dblock-free", "link-version"):
        if rows != 0:
            sys.exit("the root block of the link heap is indirect; use fewer links")
        expect(data, block, b"FHDB")
    header = 4 + 1 + 8 + offset_bytes + (4 if checksummed else 0)  # where heap objects start
    print(f"root header {root:#x}; link heap FRHP {fheap:#x}, root block {block:#x} "
          f"({'FHDB, %d bytes' % block_size if rows == 0 else 'FHIB'}, direct-block checksum "
          f"{'yes' if checksummed else 'no'}); name index BTHD {name_bt2:#x}")

    if args.mode == "dblock-free":
        target = block + block_size - 1  # the last byte of the block: unused heap space
        if data[target] != 0:
            sys.exit("the direct block has no free tail; use fewer links")
        data[target] ^= 0x5A
        print(f"flipped unused byte {target:#x} in the FHDB (its checksum no longer matches)")
    elif args.mode == "leaf":
        expect(data, name_bt2, b"BTHD")
        leaf = struct.unpack_from("<Q", data, name_bt2 + 4 + 2 + 4 + 2 + 2 + 2)[0]
        depth = struct.unpack_from("<H", data, name_bt2 + 4 + 2 + 4 + 2)[0]
        if depth != 0:
            sys.exit("the name index is deeper than one leaf; use fewer links")
        expect(data, leaf, b"BTLF")
        target = leaf + 6 + 4  # inside the first record (a name hash)
        data[target] ^= 0x5A
        print(f"flipped byte {target:#x} in the name-index leaf BTLF {leaf:#x} (checksum mismatch)")
    elif args.mode == "nrec":
        expect(data, name_bt2, b"BTHD")
        at = name_bt2 + 26  # total number of records in the B-tree
        count = struct.unpack_from("<Q", data, at)[0]
        struct.pack_into("<Q", data, at, count + args.extra)
        struct.pack_into("<I", data, at + 8, lookup3(bytes(data[name_bt2:at + 8])))
        print(f"name index BTHD {name_bt2:#x}: total records {count} -> {count + args.extra}, checksum recomputed")
    else:
        # Link messages follow one another from the block header on; walk them to the K-th one.
        p = block + header
        for _ in range(args.link):
            version, flags = data[p], data[p + 1]
            q = p + 2 + (1 if flags & 0x08 else 0) + (8 if flags & 0x04 else 0) + (1 if flags & 0x10 else 0)
            width = 1 << (flags & 3)
            name_len = int.from_bytes(data[q:q + width], "little")
            q += width + name_len
            kind = data[p + 2] if flags & 0x08 else 0
            if kind != 0:
                sys.exit("only hard links are expected here")
            p = q + 8  # hard link: object address
        if data[p] != 1:
            sys.exit(f"no link message at {p:#x}")
        data[p] = 0x7F  # link message version must be 1
        if checksummed:
            at = block + header - 4
            data[at:at + 4] = b"\0\0\0\0"
            data[at:at + 4] = struct.pack("<I", lookup3(bytes(data[block:block + block_size])))
        print(f"link #{args.link} at {p:#x}: version byte 1 -> 0x7f, FHDB checksum recomputed")

    open(args.out, "wb").write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
