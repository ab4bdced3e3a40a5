// The Intel 82540EM's registers and descriptor fields that Bulkhead's e1000 implements: those
// Linux's e1000 driver and the test guest touch (offsets in BAR0, 32-bit accesses).
#pragma once

#include <cstdint>

namespace bulkhead::device::e1000 {

// Registers (BAR0 offsets).
inline constexpr uint32_t kCtrl = 0x0000, kStatus = 0x0008, kEecd = 0x0010, kEerd = 0x0014, kCtrlExt = 0x0018,
                          kMdic = 0x0020, kFcal = 0x0028, kFcah = 0x002c, kFct = 0x0030, kVet = 0x0038,
                          kIcr = 0x00c0, kItr = 0x00c4, kIcs = 0x00c8, kIms = 0x00d0, kImc = 0x00d8,
                          kRctl = 0x0100, kFcttv = 0x0170, kTxcw = 0x0178, kTctl = 0x0400, kTipg = 0x0410,
                          kAit = 0x0458, kLedctl = 0x0e00, kPba = 0x1000, kFcrtl = 0x2160, kFcrth = 0x2168,
                          kRdbal = 0x2800, kRdbah = 0x2804, kRdlen = 0x2808, kRdh = 0x2810, kRdt = 0x2818,
                          kRdtr = 0x2820, kRxdctl = 0x2828, kRadv = 0x282c, kTdbal = 0x3800, kTdbah = 0x3804,
                          kTdlen = 0x3808, kTdh = 0x3810, kTdt = 0x3818, kTidv = 0x3820, kTxdctl = 0x3828,
                          kTadv = 0x382c, kStatsStart = 0x4000, kStatsEnd = 0x4100, kRxcsum = 0x5000,
                          kMta = 0x5200, kRa = 0x5400, kVfta = 0x5600, kWuc = 0x5800, kWufc = 0x5808,
                          kWus = 0x5810, kManc = 0x5820;
inline constexpr uint32_t kMtaEntries = 128, kRaEntries = 16, kVftaEntries = 128;
inline constexpr uint32_t kRegisterSpace = 0x20000;  // BAR0: 128 KiB

// Statistics (read-to-clear; the 64-bit ones as low/high pairs).
inline constexpr uint32_t kStatMpc = 0x4010, kStatPrc64 = 0x405c, kStatGprc = 0x4074, kStatBprc = 0x4078,
                          kStatMprc = 0x407c, kStatGptc = 0x4080, kStatGorcl = 0x4088, kStatGotcl = 0x4090,
                          kStatRnbc = 0x40a0, kStatRuc = 0x40a4, kStatRoc = 0x40ac, kStatTorl = 0x40c0,
                          kStatTotl = 0x40c8, kStatTpr = 0x40d0, kStatTpt = 0x40d4, kStatPtc64 = 0x40d8,
                          kStatMptc = 0x40f0, kStatBptc = 0x40f4, kStatTsctc = 0x40f8, kStatTsctfc = 0x40fc;

// CTRL.
inline constexpr uint32_t kCtrlSlu = 1u << 6, kCtrlRst = 1u << 26, kCtrlVme = 1u << 30, kCtrlPhyRst = 1u << 31;
// STATUS: full duplex, link up, 1000 Mb/s.
inline constexpr uint32_t kStatusFd = 1u << 0, kStatusLu = 1u << 1, kStatusSpeed1000 = 1u << 7;
// EECD.
inline constexpr uint32_t kEecdSk = 1u << 0, kEecdCs = 1u << 1, kEecdDi = 1u << 2, kEecdDo = 1u << 3,
                          kEecdReq = 1u << 6, kEecdGnt = 1u << 7, kEecdPres = 1u << 8;
// EERD (the 8254x layout: START bit 0, DONE bit 4, address 15:8, data 31:16).
inline constexpr uint32_t kEerdStart = 1u << 0, kEerdDone = 1u << 4;
// MDIC.
inline constexpr uint32_t kMdicOpWrite = 1u << 26, kMdicOpRead = 1u << 27, kMdicReady = 1u << 28,
                          kMdicInterrupt = 1u << 29, kMdicError = 1u << 30;
// Interrupt causes (ICR, ICS, IMS, IMC).
inline constexpr uint32_t kIntTxdw = 1u << 0, kIntTxqe = 1u << 1, kIntLsc = 1u << 2, kIntRxseq = 1u << 3,
                          kIntRxdmt0 = 1u << 4, kIntRxo = 1u << 6, kIntRxt0 = 1u << 7, kIntMdac = 1u << 9;
inline constexpr uint32_t kIntCauses = 0x0001ffff;
// RCTL.
inline constexpr uint32_t kRctlEn = 1u << 1, kRctlSbp = 1u << 2, kRctlUpe = 1u << 3, kRctlMpe = 1u << 4,
                          kRctlLpe = 1u << 5, kRctlLbmMask = 3u << 6, kRctlRdmtsShift = 8, kRctlMoShift = 12,
                          kRctlBam = 1u << 15, kRctlBsizeShift = 16, kRctlVfe = 1u << 18, kRctlBsex = 1u << 25,
                          kRctlSecrc = 1u << 26;
// TCTL.
inline constexpr uint32_t kTctlEn = 1u << 1;
// RAH.
inline constexpr uint32_t kRahAv = 1u << 31;

// Transmit descriptors (16 bytes). The command byte is byte 11, the status byte 12.
inline constexpr uint8_t kTxCmdEop = 0x01, kTxCmdIfcs = 0x02, kTxCmdIc = 0x04, kTxCmdTse = 0x04, kTxCmdRs = 0x08,
                         kTxCmdRps = 0x10, kTxCmdDext = 0x20, kTxCmdVle = 0x40;
inline constexpr uint8_t kTxStatusDd = 0x01;
inline constexpr uint8_t kTxDtypContext = 0x0, kTxDtypData = 0x1;
inline constexpr uint8_t kTucmdTcp = 0x01, kTucmdIp = 0x02, kTucmdTse = 0x04;
inline constexpr uint8_t kPoptsIxsm = 0x01, kPoptsTxsm = 0x02;

// Receive descriptor status and errors.
inline constexpr uint8_t kRxStatusDd = 0x01, kRxStatusEop = 0x02, kRxStatusIxsm = 0x04, kRxStatusVp = 0x08;

// PHY (M88E1011) registers and the PHY's address on the MDIO bus.
inline constexpr uint32_t kPhyAddress = 1;

}  // namespace bulkhead::device::e1000
