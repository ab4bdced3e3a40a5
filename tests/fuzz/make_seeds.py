#!/usr/bin/env python3
"""Writes the seed corpora for the libFuzzer harnesses (valid inputs the fuzzers mutate)."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    os.makedirs(os.path.join(here, 'corpus', target), exist_ok=True)
    with open(os.path.join(here, 'corpus', target, name), 'wb') as f:
        f.write(data)


# fuzz_descriptor_chain: [features][avail idx le16][guest memory from 0x1000]
def chain_seed(features, descs, heads, indirect=None):
    mem = bytearray(0x5000)
    for i, (addr, ln, flags, nxt) in enumerate(descs):
        struct.pack_into('<QIHH', mem, 16 * i, addr, ln, flags, nxt)
    for i, h in enumerate(heads):
        struct.pack_into('<H', mem, 0x1000 + 4 + 2 * i, h)
    if indirect:
        off, table = indirect
        for i, (addr, ln, flags, nxt) in enumerate(table):
            struct.pack_into('<QIHH', mem, off - 0x1000 + 16 * i, addr, ln, flags, nxt)
    return bytes([features]) + struct.pack('<H', len(heads)) + bytes(mem)


write('fuzz_descriptor_chain', 'simple', chain_seed(2, [(0x8000, 64, 1, 1), (0x9000, 512, 2, 0)], [0]))
write('fuzz_descriptor_chain', 'two', chain_seed(3, [(0x8000, 16, 0, 0), (0x8100, 16, 2, 0)], [0, 1]))
write('fuzz_descriptor_chain', 'indirect',
      chain_seed(3, [(0x5000, 48, 4, 0)], [0], (0x5000, [(0x8000, 16, 1, 1), (0x8100, 32, 3, 2), (0x8200, 8, 2, 0)])))
write('fuzz_descriptor_chain', 'loop', chain_seed(0, [(0x8000, 16, 1, 1), (0x8000, 16, 1, 0)], [0]))


# fuzz_vhost_user_messages: messages as on the wire; flags bits 4-6 = descriptors attached
def msg(req, payload=b'', fds=0):
    return struct.pack('<III', req, 1 | (fds << 4), len(payload)) + payload


def u64(v):
    return struct.pack('<Q', v)


def state(i, n):
    return struct.pack('<II', i, n)


ring_addr = struct.pack('<IIQQQQ', 0, 0, 0x7f0000001000, 0x7f0000003000, 0x7f0000002000, 0)
region = struct.pack('<QQQQ', 0, 1 << 20, 0x7f0000000000, 0)
write('fuzz_vhost_user_messages', 'startup',
      msg(1) + msg(2, u64((1 << 32) | (1 << 30) | (1 << 28) | (1 << 29))) + msg(16, u64(0x1b20b)) + msg(3) +
      msg(5, struct.pack('<II', 1, 0) + region, 1) + msg(8, state(0, 64)) + msg(10, state(0, 0)) + msg(9, ring_addr) +
      msg(12, u64(0), 1) + msg(13, u64(0), 1) + msg(18, state(0, 1)) + msg(11, state(0, 0)))
write('fuzz_vhost_user_messages', 'config_inflight',
      msg(24, struct.pack('<III', 0, 36, 0) + bytes(36)) + msg(31, struct.pack('<QQHHI', 0, 0, 2, 64, 0)) +
      msg(37, u64(0) + region, 1) + msg(38, u64(0) + region) + msg(34))


# fuzz_scsi_cdb: [cdb length][cdb][data-out]
def cdb(c, out=b''):
    return bytes([len(c)]) + bytes(c) + out


for name, data in {
        'inquiry': cdb([0x12, 0, 0, 0, 96, 0]),
        'vpd_b0': cdb([0x12, 1, 0xb0, 0, 64, 0]),
        'read10': cdb([0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0]),
        'write10': cdb([0x2a, 8, 0, 0, 0, 9, 0, 0, 1, 0], bytes(range(256)) * 2),
        'unmap': cdb([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0],
                     bytes([0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 8, 0, 0, 0, 0])),
        'modesense': cdb([0x1a, 0, 0x3f, 0, 255, 0]),
        'ws16': cdb([0x93, 8, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 4, 0, 0], bytes(512)),
        'rc16': cdb([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]),
}.items():
    write('fuzz_scsi_cdb', name, data)
