package deliver

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/tessera-id/tessera"
)

var _ tessera.Sender = (*LogSender)(nil)

// LogSender "delivers" by writing each message as one JSON line, for
// development and tests. It is the one place where Tessera deliberately
// writes a code in clear text: never use it in production.
type LogSender struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewLogSender writes messages to w (normally standard error).
func NewLogSender(w io.Writer) *LogSender { return &LogSender{enc: json.NewEncoder(w)} }

// logLine is the JSON shape of one delivered message.
type logLine struct {
	Time      string `json:"time"`
	Msg       string `json:"msg"`
	MessageID string `json:"messageId"`
	Channel   string `json:"channel"`
	To        string `json:"to"`
	Subject   string `json:"subject,omitempty"`
	Body      string `json:"body"`
}

// Send writes the message.
func (s *LogSender) Send(_ context.Context, m *tessera.Outgoing) error {
	line := logLine{
		Time: time.Now().UTC().Format(time.RFC3339Nano), Msg: "message delivered by the log sender",
		MessageID: m.ID, Channel: string(m.Channel), To: m.To, Subject: m.Content.Subject, Body: m.Content.Body,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enc.Encode(line)
}
