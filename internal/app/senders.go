package app

import (
	"fmt"
	"io"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/config"
	"github.com/tessera-id/tessera/internal/deliver"
)

// Senders builds the sender of each channel from the configuration, and
// the events channel's when TESSERA_EVENTS_URL is set. The
// log sender writes to logOut. deliveries, when not nil, records what
// providers report (the Twilio sender's SIDs).
func Senders(cfg *config.Config, logOut io.Writer, deliveries tessera.DeliveryStore) (map[tessera.Channel]tessera.Sender, error) {
	var logSender *deliver.LogSender
	var webhook *deliver.WebhookSender
	get := func(kind string, ch tessera.Channel) (tessera.Sender, error) {
		switch kind {
		case "log":
			if logSender == nil {
				logSender = deliver.NewLogSender(logOut)
			}
			return logSender, nil
		case "webhook":
			if webhook == nil {
				w, err := deliver.NewWebhookSender(deliver.WebhookConfig{URL: cfg.Webhook.URL, Secret: cfg.Webhook.Secret})
				if err != nil {
					return nil, fmt.Errorf("TESSERA_WEBHOOK_*: %w", err)
				}
				webhook = w
			}
			return webhook, nil
		case "smtp":
			s, err := deliver.NewSMTPSender(deliver.SMTPConfig{
				Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, TLS: cfg.SMTP.TLS,
				Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, From: cfg.SMTP.From,
			})
			if err != nil {
				return nil, fmt.Errorf("TESSERA_SMTP_*: %w", err)
			}
			return s, nil
		case "twilio":
			callback := ""
			if cfg.PublicURL != "" {
				callback = cfg.PublicURL + deliver.TwilioStatusPath
			}
			s, err := deliver.NewTwilioSender(deliver.TwilioConfig{
				AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken, From: cfg.Twilio.From,
				MessagingServiceSID: cfg.Twilio.MessagingServiceSID, BaseURL: cfg.Twilio.BaseURL,
				StatusCallback: callback, Deliveries: deliveries,
				WhatsAppFrom: cfg.Twilio.WhatsAppFrom, WhatsAppContentSID: cfg.Twilio.WhatsAppContentSID, VoiceLanguage: cfg.VoiceLanguage,
			})
			if err != nil {
				return nil, fmt.Errorf("TESSERA_TWILIO_*: %w", err)
			}
			return s, nil
		}
		return nil, fmt.Errorf("no %s sender for %s", kind, ch)
	}
	email, err := get(cfg.EmailSender, tessera.ChannelEmail)
	if err != nil {
		return nil, err
	}
	sms, err := get(cfg.SMSSender, tessera.ChannelSMS)
	if err != nil {
		return nil, err
	}
	senders := map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: email, tessera.ChannelSMS: sms}
	for _, ch := range PhoneChannels(cfg) {
		senders[ch] = sms
	}
	if cfg.Events.URL != "" {
		events, err := deliver.NewEventSender(deliver.WebhookConfig{URL: cfg.Events.URL, Secret: cfg.Events.Secret})
		if err != nil {
			return nil, fmt.Errorf("TESSERA_EVENTS_*: %w", err)
		}
		senders[tessera.ChannelEvents] = events
	}
	return senders, nil
}

// PhoneChannels are the phone channels the configuration can send on. They
// share the SMS sender: the log and webhook senders take every channel;
// Twilio sends WhatsApp with TESSERA_TWILIO_WHATSAPP_FROM and calls with
// TESSERA_TWILIO_FROM (a messaging service cannot call).
func PhoneChannels(cfg *config.Config) []tessera.Channel {
	chs := []tessera.Channel{tessera.ChannelSMS}
	if cfg.SMSSender != "twilio" || cfg.Twilio.WhatsAppFrom != "" {
		chs = append(chs, tessera.ChannelWhatsApp)
	}
	if cfg.SMSSender != "twilio" || cfg.Twilio.From != "" {
		chs = append(chs, tessera.ChannelCall)
	}
	return chs
}
