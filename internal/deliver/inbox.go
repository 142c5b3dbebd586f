package deliver

import (
	"context"
	"sync"
	"time"

	"github.com/tessera-id/tessera"
)

// Inbox keeps the last messages delivered by the senders it wraps (the log
// sender), newest first, for the development inbox page (/dev/inbox). It
// lives in memory: a restart empties it, and each instance has its own.
type Inbox struct {
	// Anywhere: the operator asked for the inbox (TESSERA_DEV_INBOX=1), so
	// it answers requests through a proxy or naming another host too;
	// otherwise only a request from this machine that names it.
	Anywhere bool

	now  func() time.Time
	mu   sync.Mutex
	ring []InboxMessage // at most cap(ring); next is the slot written next
	next int
	full bool
}

// InboxMessage is one delivered message as the inbox shows it.
type InboxMessage struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Channel string    `json:"channel"`
	To      string    `json:"to"`
	Subject string    `json:"subject,omitempty"`
	Body    string    `json:"body"`
	// Code is the code the message carries; empty for a notice.
	Code string `json:"code,omitempty"`
}

// DefaultInboxSize is how many messages the development inbox keeps.
const DefaultInboxSize = 200

// NewInbox keeps the last size messages, stamped with now.
func NewInbox(size int, now func() time.Time) *Inbox {
	if now == nil {
		now = time.Now
	}
	return &Inbox{now: now, ring: make([]InboxMessage, size)}
}

// Size is how many messages the inbox keeps.
func (in *Inbox) Size() int { return len(in.ring) }

// Wrap returns a sender that sends with next and, once next has
// succeeded, records the message.
func (in *Inbox) Wrap(next tessera.Sender) tessera.Sender {
	return inboxSender{in: in, next: next}
}

type inboxSender struct {
	in   *Inbox
	next tessera.Sender
}

func (s inboxSender) Send(ctx context.Context, m *tessera.Outgoing) error {
	if err := s.next.Send(ctx, m); err != nil {
		return err
	}
	s.in.add(m)
	return nil
}

func (in *Inbox) add(m *tessera.Outgoing) {
	msg := InboxMessage{
		ID: m.ID, Time: in.now().UTC(), Channel: string(m.Channel), To: m.To,
		Subject: m.Content.Subject, Body: m.Content.Body, Code: m.Content.Code,
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.ring) == 0 {
		return
	}
	in.ring[in.next] = msg
	in.next = (in.next + 1) % len(in.ring)
	if in.next == 0 {
		in.full = true
	}
}

// Messages returns the kept messages, newest first.
func (in *Inbox) Messages() []InboxMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := in.next
	if in.full {
		n = len(in.ring)
	}
	out := make([]InboxMessage, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, in.ring[(in.next-i+len(in.ring))%len(in.ring)])
	}
	return out
}
