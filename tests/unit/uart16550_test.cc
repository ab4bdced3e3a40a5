// The 16550A model against the datasheet's register semantics and what Linux's 8250 driver
// and our test guest rely on.
#include "device-procs/serial/uart16550.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"

namespace bulkhead::device {
namespace {

constexpr uint8_t RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

// Records every level change, so edges can be counted.
struct RecordingIrq : IrqSink {
  std::vector<bool> levels;
  void set_level(bool high) override {
    if (levels.empty() || levels.back() != high) levels.push_back(high);
  }
  int rising_edges() const {
    int n = 0;
    for (size_t i = 0; i < levels.size(); ++i)
      if (levels[i] && (i == 0 || !levels[i - 1])) ++n;
    return n;
  }
};

class UartTest : public ::testing::Test {
 protected:
  RecordingIrq irq;
  Uart16550 uart{irq, 64};
  std::string drain() {
    std::string s(uart.output_pending(), 0);
    uart.peek_output(reinterpret_cast<uint8_t*>(s.data()), s.size());
    uart.consume_output(s.size());
    return s;
  }
  void enable_irq_output() { uart.write(MCR, 0x08); }  // OUT2 gates the IRQ on a PC
  void receive(const std::string& s) { uart.receive({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }
};

TEST_F(UartTest, TransmitsWhatIsWrittenToThr) {
  for (char c : std::string("hi\n")) uart.write(THR, static_cast<uint8_t>(c));
  EXPECT_EQ(drain(), "hi\n");
}

TEST_F(UartTest, DivisorLatchSharesOffsetsZeroAndOne) {
  uart.write(LCR, 0x80);
  uart.write(DLL, 0x34);
  uart.write(DLM, 0x12);
  EXPECT_EQ(uart.read(DLL), 0x34);
  EXPECT_EQ(uart.read(DLM), 0x12);
  EXPECT_EQ(uart.divisor(), 0x1234);
  uart.write(LCR, 0x03);
  uart.write(IER, 0x0f);
  EXPECT_EQ(uart.read(IER), 0x0f);
  EXPECT_EQ(uart.divisor(), 0x1234) << "IER writes must not touch the divisor";
  EXPECT_EQ(uart.output_pending(), 0u) << "a DLL write is not a transmission";
}

TEST_F(UartTest, IerKeepsOnlyFourBits) {
  uart.write(IER, 0xff);
  EXPECT_EQ(uart.read(IER), 0x0f);
}

TEST_F(UartTest, ScratchRegisterHoldsAnyValue) {
  for (int v : {0x00, 0x55, 0xaa, 0xff}) {
    uart.write(SCR, static_cast<uint8_t>(v));
    EXPECT_EQ(uart.read(SCR), v);
  }
}

TEST_F(UartTest, IdleLineStatusAndInterruptId) {
  EXPECT_EQ(uart.read(LSR), 0x60) << "THRE and TEMT set, no data";
  EXPECT_EQ(uart.read(IIR), 0x01) << "no interrupt, FIFOs off";
  uart.write(FCR, 0x01);
  EXPECT_EQ(uart.read(IIR), 0xc1) << "FIFO-enabled bits read back as 11";
}

TEST_F(UartTest, EnablingThreInterruptRaisesItAndReadingIirClearsIt) {
  enable_irq_output();
  uart.write(IER, 0x02);
  EXPECT_TRUE(uart.irq_level());
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x02);
  EXPECT_FALSE(uart.irq_level()) << "reading IIR acknowledges THRE";
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x01);
}

TEST_F(UartTest, EachThrWriteProducesAFreshEdge) {
  enable_irq_output();
  uart.write(IER, 0x02);
  int before = irq.rising_edges();
  uart.write(THR, 'a');
  uart.write(THR, 'b');
  EXPECT_EQ(irq.rising_edges(), before + 2) << "edge-triggered PICs need the line to drop and rise";
}

TEST_F(UartTest, InterruptLineNeedsOut2AndNotLoopback) {
  uart.write(IER, 0x02);
  EXPECT_FALSE(uart.irq_level()) << "OUT2 clear: the PC's IRQ buffer is off";
  uart.write(MCR, 0x08);
  EXPECT_TRUE(uart.irq_level());
  uart.write(MCR, 0x18);
  EXPECT_FALSE(uart.irq_level()) << "loopback disconnects OUT2 from the pin";
}

TEST_F(UartTest, ReceiveWithoutFifoHoldsOneByte) {
  EXPECT_EQ(uart.rx_space(), 1u);
  receive("xy");
  EXPECT_EQ(uart.read(LSR) & 0x01, 0x01);
  EXPECT_EQ(uart.rx_space(), 0u) << "backpressure instead of overrun";
  EXPECT_EQ(uart.read(RBR), 'x');
  EXPECT_EQ(uart.read(LSR) & 0x01, 0x00);
}

TEST_F(UartTest, FifoTriggerLevelAndPriority) {
  enable_irq_output();
  uart.write(FCR, 0x81);  // FIFO on, trigger 8
  uart.write(IER, 0x03);  // THRE becomes pending at once
  receive("1234567");
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x02) << "7 bytes stay below the trigger of 8";
  uart.write(IER, 0x01);
  uart.write(IER, 0x03);  // re-arm THRE
  receive("8");
  EXPECT_EQ(uart.read(IIR), 0xc4) << "received data outranks THRE";
  EXPECT_EQ(uart.rx_space(), 8u);
  for (char expected : std::string("12345678")) EXPECT_EQ(uart.read(RBR), expected);
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x02) << "THRE again once the FIFO is empty";
}

TEST_F(UartTest, CharacterTimeoutReportsDataBelowTrigger) {
  enable_irq_output();
  uart.write(FCR, 0xc1);  // trigger 14
  uart.write(IER, 0x01);
  receive("ab");
  EXPECT_FALSE(uart.irq_level());
  EXPECT_TRUE(uart.wants_timeout());
  uart.fire_timeout();
  EXPECT_TRUE(uart.irq_level());
  EXPECT_EQ(uart.read(IIR), 0xcc);
  EXPECT_EQ(uart.read(RBR), 'a');
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x01) << "reading RBR clears the timeout indication";
  EXPECT_TRUE(uart.wants_timeout()) << "a byte remains, so a new timeout is due";
}

TEST_F(UartTest, FcrClearsTheReceiveFifo) {
  uart.write(FCR, 0x01);
  receive("abc");
  uart.write(FCR, 0x03);
  EXPECT_EQ(uart.read(LSR) & 0x01, 0);
}

TEST_F(UartTest, LoopbackRoutesTransmitToReceiveAndModemLines) {
  uart.write(FCR, 0x01);
  uart.write(MCR, 0x10 | 0x0a);  // loop, RTS, OUT2 (what Linux's autoconfig writes)
  EXPECT_EQ(uart.read(MSR) & 0xf0, 0x90) << "CTS from RTS, DCD from OUT2";
  uart.write(THR, 'Z');
  EXPECT_EQ(uart.output_pending(), 0u);
  EXPECT_EQ(uart.read(RBR), 'Z');
  EXPECT_EQ(uart.rx_space(), 0u) << "host input is held back in loopback";
}

TEST_F(UartTest, ModemStatusDeltasAreClearedByReading) {
  uart.write(MCR, 0x10);
  EXPECT_EQ(uart.read(MSR) & 0x0f, 0x0b) << "entering loopback drops CTS, DSR and DCD";
  uart.write(MCR, 0x10 | 0x01);  // DTR -> DSR
  EXPECT_EQ(uart.read(MSR) & 0x0f, 0x02);
  EXPECT_EQ(uart.read(MSR) & 0x0f, 0x00);
}

TEST_F(UartTest, OutsideLoopbackAPeerIsConnected) { EXPECT_EQ(uart.read(MSR), 0xb0); }

TEST_F(UartTest, LoopbackOverrunSetsAndReadingLsrClearsIt) {
  uart.write(MCR, 0x10);
  uart.write(THR, '1');
  uart.write(THR, '2');  // non-FIFO mode holds one byte
  EXPECT_EQ(uart.read(LSR) & 0x02, 0x02);
  EXPECT_EQ(uart.read(LSR) & 0x02, 0x00);
  EXPECT_EQ(uart.read(RBR), '1');
}

TEST_F(UartTest, LineStatusInterruptHasTopPriority) {
  enable_irq_output();
  uart.write(MCR, 0x18);
  uart.write(IER, 0x07);
  uart.write(THR, '1');
  uart.write(THR, '2');
  uart.write(MCR, 0x08);  // leave loopback so the line reaches the pin
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x06);
  uart.read(LSR);
  EXPECT_EQ(uart.read(IIR) & 0x0f, 0x04);
}

TEST_F(UartTest, ThreMeansRoomForAWholeFifo) {
  uart.write(FCR, 0x01);
  for (int i = 0; i < 48; ++i) uart.write(THR, 'x');
  EXPECT_EQ(uart.read(LSR) & 0x20, 0x20) << "16 of 64 bytes free: a FIFO load fits";
  uart.write(THR, 'x');
  EXPECT_EQ(uart.read(LSR) & 0x20, 0x00) << "15 free: not a whole FIFO";
  for (int i = 0; i < 15; ++i) uart.write(THR, 'x');
  EXPECT_EQ(uart.dropped_output(), 0u) << "the last FIFO load still fits";
}

TEST_F(UartTest, FullOutputBufferClearsThreAndDropsExtraBytesWithoutGrowing) {
  enable_irq_output();
  for (int i = 0; i < 64; ++i) uart.write(THR, 'x');
  EXPECT_EQ(uart.read(LSR) & 0x60, 0x00) << "a full buffer holds THRE low: the guest waits";
  for (int i = 0; i < 1000; ++i) uart.write(THR, 'y');
  EXPECT_EQ(uart.output_pending(), 64u);
  EXPECT_EQ(uart.dropped_output(), 1000u);
  uart.write(IER, 0x02);
  EXPECT_FALSE(uart.irq_level());
  uart.consume_output(10);
  EXPECT_EQ(uart.read(LSR) & 0x20, 0x20);
  EXPECT_TRUE(uart.irq_level()) << "room again: THR-empty interrupt";
}

TEST_F(UartTest, DivisorZeroDoesNotDivideByZero) {
  uart.write(LCR, 0x80);
  uart.write(DLL, 0);
  uart.write(DLM, 0);
  uart.write(LCR, 0x03);
  EXPECT_EQ(uart.divisor(), 0);
  EXPECT_GT(uart.char_timeout_ns(), 0u);
  uart.write(FCR, 0x01);
  receive("a");
  uart.fire_timeout();
  EXPECT_EQ(uart.read(RBR), 'a');
}

TEST_F(UartTest, WritesToReadOnlyRegistersAreIgnored) {
  uart.write(LSR, 0xff);
  uart.write(MSR, 0xff);
  EXPECT_EQ(uart.read(LSR), 0x60);
  EXPECT_EQ(uart.read(MSR), 0xb0);
}

TEST_F(UartTest, CharacterTimeoutFollowsTheBaudRate) {
  uart.write(LCR, 0x80);
  uart.write(DLL, 1);
  uart.write(DLM, 0);
  uint64_t fast = uart.char_timeout_ns();
  uart.write(DLL, 12);
  EXPECT_NEAR(static_cast<double>(uart.char_timeout_ns()), static_cast<double>(fast) * 12, 20.0);
  EXPECT_NEAR(static_cast<double>(fast), 4 * 10 * 1e9 / 115200, 1000.0);
}

// Crash recovery: a UART built from another's registers, over the same output buffer, is that
// UART: the same FIFO contents, interrupt state and pending output.
TEST(UartRestore, AUartRestoredFromAnothersRegistersCarriesOnAsIt) {
  std::vector<uint8_t> buffer(64);
  RecordingIrq irq1, irq2;
  Uart16550 first(irq1, 1);
  first.use_output_buffer(buffer);
  first.write(MCR, 0x08);
  first.write(FCR, 0x01);  // FIFO on, trigger 1
  first.write(IER, 0x01);  // received-data interrupt
  const uint8_t in[] = {'x', 'y', 'z'};
  first.receive(in);
  for (char c : std::string("hello")) first.write(THR, static_cast<uint8_t>(c));
  ASSERT_TRUE(first.irq_level());

  Uart16550 second(irq2, 1);
  second.use_output_buffer(buffer);
  second.restore(first.registers());
  EXPECT_EQ(irq2.levels, std::vector<bool>{true}) << "the line is driven as the state says";
  EXPECT_EQ(second.read(IER), 0x01);
  EXPECT_EQ(second.read(RBR), 'x');
  EXPECT_EQ(second.read(RBR), 'y');
  std::string out(second.output_pending(), 0);
  second.peek_output(reinterpret_cast<uint8_t*>(out.data()), out.size());
  EXPECT_EQ(out, "hello");
}

TEST(UartRestore, RegistersNoUartCanHaveAreRefused) {
  std::vector<uint8_t> buffer(64);
  RecordingIrq irq;
  Uart16550 uart(irq, 1);
  uart.use_output_buffer(buffer);
  Uart16550::Registers bad;
  bad.rx_count = 200;
  EXPECT_THROW(uart.restore(bad), InputError);
  Uart16550::Registers overfull;
  overfull.output_head = 1000;
  EXPECT_THROW(uart.restore(overfull), InputError) << "more output than the buffer holds";
}

}  // namespace
}  // namespace bulkhead::device
