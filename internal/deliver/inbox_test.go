package deliver_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/deliver"
)

type failingSender struct{}

func (failingSender) Send(context.Context, *tessera.Outgoing) error { return errors.New("down") }

func TestInboxKeepsTheLastMessagesNewestFirst(t *testing.T) {
	in := deliver.NewInbox(3, nil)
	s := in.Wrap(deliver.NewLogSender(discard{}))
	if got := in.Messages(); len(got) != 0 {
		t.Fatalf("a new inbox holds %d messages", len(got))
	}
	for i := 1; i <= 5; i++ {
		m := &tessera.Outgoing{ID: fmt.Sprint(i), Channel: tessera.ChannelEmail, To: "a@example.com",
			Content: tessera.MessageContent{Subject: "s", Body: fmt.Sprintf("code %d00000", i), Code: fmt.Sprintf("%d00000", i)}}
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		got := in.Messages()
		if len(got) != min(i, 3) || got[0].ID != fmt.Sprint(i) || got[0].Code != fmt.Sprintf("%d00000", i) {
			t.Fatalf("after %d sends: %+v", i, got)
		}
	}
	if got := in.Messages(); got[1].ID != "4" || got[2].ID != "3" {
		t.Fatalf("not newest first: %+v", got)
	}
	// A message its sender failed to deliver is not in the inbox.
	if err := in.Wrap(failingSender{}).Send(context.Background(), &tessera.Outgoing{ID: "lost"}); err == nil {
		t.Fatal("the wrapped sender's error was lost")
	}
	if got := in.Messages(); got[0].ID != "5" {
		t.Fatalf("a failed send was recorded: %+v", got[0])
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
