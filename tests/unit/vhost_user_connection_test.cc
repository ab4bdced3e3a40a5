// vhost-user framing over a socketpair: fds, replies and malformed input.
#include "vhost-user/connection.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

namespace bulkhead::vhost_user {
namespace {

struct Pair {
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    front = std::make_unique<Connection>(UniqueFd(fds[0]));
    back = std::make_unique<Connection>(UniqueFd(fds[1]));
  }
  std::unique_ptr<Connection> front, back;
};

TEST(VhostUserConnection, CarriesPayloadAndDescriptors) {
  Pair p;
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
  int fd = efd.get();
  p.front->send(Message::make(static_cast<uint32_t>(Request::kSetVringKick), uint64_t{3}), {&fd, 1});
  Message m;
  ASSERT_TRUE(p.back->receive(m));
  EXPECT_EQ(m.request(), static_cast<uint32_t>(Request::kSetVringKick));
  EXPECT_EQ(m.payload_as<uint64_t>(), 3u);
  ASSERT_EQ(m.fds.size(), 1u);
  uint64_t one = 1, got = 0;
  ASSERT_EQ(::write(efd.get(), &one, 8), 8);
  ASSERT_EQ(::read(m.fds[0].get(), &got, 8), 8) << "the received fd is the same eventfd";
  EXPECT_EQ(got, 1u);
}

TEST(VhostUserConnection, ReplyAckRoundTrip) {
  Pair p;
  std::thread backend([&] {
    Message m;
    ASSERT_TRUE(p.back->receive(m));
    EXPECT_TRUE(m.needs_reply());
    p.back->reply_u64(m, 0);
    ASSERT_TRUE(p.back->receive(m));
    p.back->reply_u64(m, 1);
  });
  EXPECT_NO_THROW(p.front->send_with_ack(Message::make_empty(1), {}, "first"));
  EXPECT_THROW(p.front->send_with_ack(Message::make_empty(2), {}, "second"), InputError);
  backend.join();
}

TEST(VhostUserConnection, PayloadSizeMustMatchTheType) {
  Message m = Message::make(1, uint32_t{5});
  EXPECT_THROW(m.payload_as<uint64_t>(), InputError);
}

TEST(VhostUserConnection, RejectsOversizedAndWrongVersionHeaders) {
  for (Header h : {Header{1, kVersion, static_cast<uint32_t>(kMaxPayload + 1)}, Header{1, 0x2, 0}}) {
    Pair p;
    ASSERT_EQ(::write(p.front->fd(), &h, sizeof h), static_cast<ssize_t>(sizeof h));
    Message m;
    EXPECT_THROW(p.back->receive(m), InputError);
  }
}

TEST(VhostUserConnection, HangUpMidMessageIsAnError) {
  Pair p;
  Header h{1, kVersion, 8};
  ASSERT_EQ(::write(p.front->fd(), &h, sizeof h), static_cast<ssize_t>(sizeof h));
  p.front.reset();
  Message m;
  EXPECT_THROW(p.back->receive(m), InputError);
}

TEST(VhostUserConnection, OrderlyHangUpAtABoundaryIsNotAnError) {
  Pair p;
  p.front.reset();
  Message m;
  EXPECT_FALSE(p.back->receive(m));
}

TEST(VhostUserConnection, AReplyToAnotherRequestIsRefused) {
  Pair p;
  std::thread backend([&] {
    Message m;
    ASSERT_TRUE(p.back->receive(m));
    p.back->send(Message::make(99, uint64_t{0}, kFlagReply));
  });
  EXPECT_THROW(p.front->call(Message::make_empty(1)), InputError);
  backend.join();
}

}  // namespace
}  // namespace bulkhead::vhost_user
