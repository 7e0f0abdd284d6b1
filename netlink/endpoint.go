package netlink

import "context"

// Endpoint is the local side a session moves messages between: an outbox
// it takes messages from and an inbox it delivers messages to. The lead
// implementation is a pipe whose send and receive queues were split.
type Endpoint interface {
	// Next blocks until a message to send is available, or ctx ends, and
	// returns it. A returned message has left the local outbox: the session
	// owns it until the peer acknowledges it (Session.Close hands back the
	// ones never acknowledged). When ctx ends Next must return ctx's error
	// without taking a message. Any other error ends the session's
	// connection. The session never modifies a message.
	Next(ctx context.Context) ([]byte, error)
	// Deliver queues one received message for local readers. The session
	// only delivers within the room the endpoint advertised, so Deliver
	// never has to wait and must not refuse for lack of room; the one
	// exception is the peer's "BYE TEXT", which is delivered outside
	// credit. An error ends the connection (the message is then
	// redelivered on a later one). Messages must not be modified or
	// appended to: consecutive small messages may share one allocation.
	Deliver(msg []byte) error
	// Room is the free space of the local inbox in bytes (each message
	// counting max(len, 1)), advertised to the peer as credit. An empty
	// inbox must have room for the largest message, or a message that
	// large can never cross. Room may shrink on its own (a lowered
	// capacity); credit already granted stays granted.
	Room() int64
	// RoomChanged returns a channel that receives a value whenever Room may
	// have grown: the endpoint makes a non-blocking send on a channel with
	// a buffer of one, so signals coalesce and are never lost. It must
	// return the same channel every time; only the session receives from
	// it.
	RoomChanged() <-chan struct{}
}
