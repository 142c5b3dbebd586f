package storetest

import (
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// testFailOver: a message that failed hands over to its next channel in
// one step, only while its holder holds it, and every attempt is listed.
func testFailOver(t *testing.T, st tessera.Store) {
	s, ok := st.(tessera.FallbackStore)
	if !ok {
		t.Skip("not a FallbackStore")
	}
	v := newVerification("c1", "v-fallback")
	first := newMessage("c1", v.ID, "m-whatsapp")
	first.Channel = tessera.ChannelWhatsApp
	must(t, st.CreateVerification(ctx(), v, first))
	claimed, err := st.ClaimMessages(ctx(), tessera.ChannelWhatsApp, "w1", t0, time.Minute, 10)
	must(t, err)
	if len(claimed) != 1 {
		t.Fatalf("claimed %d", len(claimed))
	}
	next := newMessage("c1", v.ID, "m-sms")
	next.Channel, next.CreatedAt = tessera.ChannelSMS, t0.Add(time.Millisecond)
	// Another worker's hand-over is refused and queues nothing.
	wantCode(t, s.FailOver(ctx(), first.ID, "w2", 1, "twilio: 63007", next), tessera.ENOTFOUND)
	if got, err := st.ClaimMessages(ctx(), tessera.ChannelSMS, "w1", t0, time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("a refused hand-over queued %d (%v)", len(got), err)
	}
	must(t, s.FailOver(ctx(), first.ID, "w1", 1, "twilio: 63007", next))
	wantCode(t, s.FailOver(ctx(), first.ID, "w1", 1, "again", newMessage("c1", v.ID, "m-call")), tessera.ENOTFOUND)
	newest, err := st.MessageForVerification(ctx(), "c1", v.ID)
	must(t, err)
	if newest.ID != next.ID || newest.Channel != tessera.ChannelSMS || newest.Status != tessera.MessagePending {
		t.Fatalf("newest %+v", newest)
	}
	all, err := s.MessagesForVerification(ctx(), "c1", v.ID)
	must(t, err)
	if len(all) != 2 || all[0].ID != first.ID || all[0].Status != tessera.MessageFailed || all[0].LastError != "twilio: 63007" || all[0].Sealed != nil || all[1].ID != next.ID {
		t.Fatalf("messages %+v", all)
	}
	if got, err := st.ClaimMessages(ctx(), tessera.ChannelSMS, "w1", t0, time.Minute, 10); err != nil || len(got) != 1 || got[0].ID != next.ID {
		t.Fatalf("the next channel's message is not claimable: %v %v", got, err)
	}
	if other, err := s.MessagesForVerification(ctx(), "c2", v.ID); err != nil || len(other) != 0 {
		t.Fatalf("another owner sees %d messages (%v)", len(other), err)
	}

	// The SMS is sent, then reported undelivered: a call takes over, once.
	must(t, st.MarkMessagesSent(ctx(), []string{next.ID}, t0))
	call := newMessage("c1", v.ID, "m-call")
	call.Channel, call.CreatedAt = tessera.ChannelCall, t0.Add(2*time.Millisecond)
	must(t, s.FallBack(ctx(), next.ID, call))
	again := newMessage("c1", v.ID, "m-call-2")
	wantCode(t, s.FallBack(ctx(), next.ID, again), tessera.ENOTFOUND)
	wantCode(t, s.FallBack(ctx(), "no-such-message", again), tessera.ENOTFOUND)
	got, err := s.MessageByID(ctx(), call.ID)
	must(t, err)
	if got.Channel != tessera.ChannelCall || got.Status != tessera.MessagePending || got.VerificationID != v.ID {
		t.Fatalf("MessageByID = %+v", got)
	}
	_, err = s.MessageByID(ctx(), again.ID)
	wantCode(t, err, tessera.ENOTFOUND)
	if all, err := s.MessagesForVerification(ctx(), "c1", v.ID); err != nil || len(all) != 3 {
		t.Fatalf("messages %d, %v", len(all), err)
	}
}

// testFallbackTimer: a sent message falls back on its timer once, and not
// after a delivery report or once taken off it.
func testFallbackTimer(t *testing.T, st tessera.Store) {
	s, ok := st.(tessera.TimedFallbackStore)
	if !ok {
		t.Skip("not a TimedFallbackStore")
	}
	v := newVerification("c1", "v-timer")
	sms := newMessage("c1", v.ID, "m-timer-sms")
	sms.Channel = tessera.ChannelSMS
	must(t, st.CreateVerification(ctx(), v, sms))
	reported, stopped := newMessage("c1", v.ID, "m-timer-reported"), newMessage("c1", v.ID, "m-timer-stopped")
	must(t, st.QueueMessage(ctx(), reported))
	must(t, st.QueueMessage(ctx(), stopped))
	for _, m := range []*tessera.Message{sms, reported, stopped} {
		must(t, s.MarkSentFallBackAt(ctx(), m.ID, t0, t0.Add(time.Minute)))
	}
	if due, err := s.FallbacksDue(ctx(), t0.Add(59*time.Second), 10); err != nil || len(due) != 0 {
		t.Fatalf("due before the time: %d, %v", len(due), err)
	}
	if ds, ok := st.(tessera.DeliveryStore); ok {
		must(t, ds.RecordDelivery(ctx(), reported.ID, "SM1", tessera.DeliveryDelivered, "", t0.Add(time.Second)))
	} else {
		must(t, s.StopFallback(ctx(), reported.ID))
	}
	must(t, s.StopFallback(ctx(), stopped.ID))
	due, err := s.FallbacksDue(ctx(), t0.Add(time.Minute), 10)
	must(t, err)
	if len(due) != 1 || due[0].ID != sms.ID || due[0].Status != tessera.MessageSent || due[0].Sealed != nil || !due[0].FallbackAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("due %+v", due)
	}
	call := newMessage("c1", v.ID, "m-timer-call")
	call.Channel, call.CreatedAt = tessera.ChannelCall, t0.Add(time.Minute)
	wantCode(t, s.FallBackUndelivered(ctx(), sms.ID, t0.Add(30*time.Second), "early", call), tessera.ENOTFOUND)
	must(t, s.FallBackUndelivered(ctx(), sms.ID, t0.Add(time.Minute), "not reported delivered within 1m0s", call))
	wantCode(t, s.FallBackUndelivered(ctx(), sms.ID, t0.Add(time.Minute), "again", newMessage("c1", v.ID, "m-timer-call-2")), tessera.ENOTFOUND)
	if due, err := s.FallbacksDue(ctx(), t0.Add(time.Hour), 10); err != nil || len(due) != 0 {
		t.Fatalf("due after the fallback: %d, %v", len(due), err)
	}
	fs := st.(tessera.FallbackStore)
	got, err := fs.MessageByID(ctx(), sms.ID)
	must(t, err)
	if got.LastError != "not reported delivered within 1m0s" || !got.FallbackAt.IsZero() || got.Status != tessera.MessageSent {
		t.Fatalf("the timed-out message %+v", got)
	}
	if _, err := fs.MessageByID(ctx(), call.ID); err != nil {
		t.Fatalf("the call was not queued: %v", err)
	}
}
