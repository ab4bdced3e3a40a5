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


# fuzz_net_device: [queue 0 rx | 1 tx | 2 ctrl][count] {gpa le32, len le16, flags}... then bytes
# (at guest 0x100000, and a frame from the host end)
def net_seed(queue, descs, payload=b''):
    return bytes([queue, len(descs)]) + b''.join(struct.pack('<IHB', a, l, f) for a, l, f in descs) + payload


frame = bytes(12) + bytes([0xff] * 6) + bytes([0x52, 0x54, 0, 1, 2, 3]) + b'\x08\x06' + bytes(46)
write('fuzz_net_device', 'tx', net_seed(1, [(0x100000, len(frame), 0)], frame))
write('fuzz_net_device', 'tx-split-header', net_seed(1, [(0x100000, 5, 0), (0x100005, 7, 0), (0x10000c, 60, 0)], frame))
write('fuzz_net_device', 'rx', net_seed(0, [(0x180000, 2048, 2)], frame[12:]))
write('fuzz_net_device', 'rx-merged', net_seed(0, [(0x180000, 40, 2)], frame[12:] * 20))
write('fuzz_net_device', 'ctrl-promisc', net_seed(2, [(0x100000, 3, 0), (0x100100, 1, 2)], b'\x00\x00\x01'))
write('fuzz_net_device', 'ctrl-mac-table', net_seed(2, [(0x100000, 10, 0), (0x100100, 1, 2)], b'\x01\x00' + bytes(8)))


# fuzz_e1000: records [op][offset le32][value le32]; ops 4 and 5 are followed by value % 4096 bytes
def e1000_op(op, offset, value, payload=b''):
    return struct.pack('<BII', op, offset, value) + payload


def e1000_tx_setup():
    ring = [e1000_op(0, off, v) for off, v in ((0x3800, 0x10000), (0x3804, 0), (0x3808, 256), (0x3810, 0), (0x3818, 0),
                                                (0x400, 0x0103f0fa))]
    return b''.join(ring)


legacy = struct.pack('<QHBBBBH', 0x100000, 60, 0, 0x0b, 0, 0, 0)  # EOP | IFCS | RS
write('fuzz_e1000', 'tx-legacy', e1000_tx_setup() + e1000_op(4, 0x100000, 60, bytes([0xff] * 6) + bytes(54)) +
      e1000_op(4, 0x10000, 16, legacy) + e1000_op(0, 0x3818, 1))
context = struct.pack('<BBHBBHIBBH', 14, 24, 33, 34, 50, 0, 0x27000000 | 200, 0, 54, 100)  # TSE TCP IP DEXT
data_desc = struct.pack('<QIBBH', 0x100000, 0x2d100000 | 254, 0, 3, 0)  # EOP TSE RS DEXT, DTYP data, IXSM TXSM
write('fuzz_e1000', 'tx-tso', e1000_tx_setup() + e1000_op(4, 0x100000, 254, bytes(254)) +
      e1000_op(4, 0x10000, 32, context + data_desc) + e1000_op(0, 0x3818, 2))
rx = [e1000_op(0, off, v) for off, v in ((0x2800, 0x20000), (0x2808, 256), (0x2810, 0), (0x2818, 15), (0x100, 0x8002))]
write('fuzz_e1000', 'rx', e1000_op(4, 0x20000, 16, struct.pack('<Q', 0x200000) + bytes(8)) + b''.join(rx) +
      e1000_op(5, 0, 60, bytes([0xff] * 6) + bytes(54)))
write('fuzz_e1000', 'eeprom-mdic', e1000_op(0, 0x14, 0xff01) + e1000_op(0, 0x20, 0x08000000 | (7 << 21) | (31 << 16)) +
      e1000_op(1, 0x14, 0) + e1000_op(2, 0, 0) + e1000_op(2, 1, 0x04000000))


# fuzz_ide: records [op][where le32][value le32]; where = region << 16 | size index << 8 | offset.
def ide_op(op, region, offset, value, size_index=0, payload=b''):
    return struct.pack('<BII', op, region << 16 | size_index << 8 | offset, value) + payload


def ide_command(opcode, lba=0, count=1, device=0xe0):
    regs = [(2, count), (3, lba & 0xff), (4, (lba >> 8) & 0xff), (5, (lba >> 16) & 0xff), (6, device)]
    return b''.join(ide_op(0, 0, r, v) for r, v in regs) + ide_op(0, 0, 7, opcode)


sector = bytes(range(256)) * 2
write('fuzz_ide', 'pio-write-read', ide_command(0x30, 8) + ide_op(2, 0, 0, 512, 1, sector) + ide_command(0x20, 8) +
      ide_op(3, 0, 0, 512, 1))
prd = struct.pack('<II', 0x20000, 0x80000000 | 4096)
write('fuzz_ide', 'dma-read', ide_op(4, 0, 0, len(prd), 0, prd) + ide_op(0, 4, 4, 0x10000, 2) + ide_op(0, 4, 0, 0x08) +
      ide_command(0xc8, 0, 8) + ide_op(0, 4, 0, 0x09) + ide_op(1, 4, 2, 0))
cdb = bytes([0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
packet = b''.join(ide_op(0, 2, r, v) for r, v in ((6, 0xa0), (1, 0), (4, 0x00), (5, 0x20))) + ide_op(0, 2, 7, 0xa0)
write('fuzz_ide', 'atapi-read', packet + struct.pack('<BII', 2, 0x100, len(cdb)) + cdb +
      struct.pack('<BII', 3, 0x100, 4096))
write('fuzz_ide', 'identify', ide_command(0xec) + ide_op(3, 0, 0, 512, 1))

# fuzz_balloon: [queue 0 inflate | 1 deflate | 2 stats | 3 report][count] {gpa le32, len le16, flags}... then
# bytes: the layout of fuzz_net_device.
pfns = b''.join(struct.pack('<I', 0x200 + i) for i in range(16))
write('fuzz_balloon', 'inflate', net_seed(0, [(0x100000, len(pfns), 0)], pfns))
write('fuzz_balloon', 'deflate', net_seed(1, [(0x100000, len(pfns), 0)], pfns))
write('fuzz_balloon', 'outside-ram', net_seed(0, [(0x100000, 12, 0)], struct.pack('<III', 0xc0000, 0xffffffff, 0x5000)))
stats = b''.join(struct.pack('<HQ', tag, 1000 * tag) for tag in range(10))
write('fuzz_balloon', 'stats', net_seed(2, [(0x100000, len(stats), 0)], stats))
write('fuzz_balloon', 'report', net_seed(3, [(0x280000, 0x8000, 2)]))

