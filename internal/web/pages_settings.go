package web

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
)

func (p *Pages) settingsRoutes(get, post func(string, http.HandlerFunc)) {
	get("/settings", p.handleSettings)
	post("/settings/password", p.handlePassword)
	post("/settings/totp", p.handleTOTP)
	post("/settings/totp/verify", p.handleTOTPVerify)
	post("/settings/recovery-codes", p.handleRecoveryCodes)
	post("/settings/recovery-codes/show", p.handleRecoveryCodesShow)
	post("/settings/recovery-codes/download", p.handleRecoveryCodesDownload)
	post("/settings/passkeys/begin", p.handlePasskeyEnrolBegin)
	post("/settings/passkeys/finish", p.handlePasskeyEnrolFinish)
	post("/settings/passkeys/rename", p.handlePasskeyRename)
	post("/settings/passkeys/remove", p.handlePasskeyRemove)
	post("/settings/sessions/end", p.handleSessionEnd)
	post("/settings/sessions/end-others", p.handleSessionsEndOthers)
	post("/settings/anti-phishing", p.handleAntiPhishing)
	post("/settings/anti-phishing/set", p.handleAntiPhishingSet)
	post("/settings/email", p.handleKeyChange(account.DestinationEmail))
	post("/settings/phone/change", p.handleKeyChange(account.DestinationPhone))
	post("/settings/key/new", p.handleKeyChangeNew)
	post("/settings/key/confirm", p.handleKeyChangeConfirm)
	post("/settings/phone", p.handlePhoneAdd)
	post("/settings/phone/confirm", p.handlePhoneAddConfirm)
	post("/settings/phone/remove", p.handlePhoneRemove)
	post("/settings/phone/remove/confirm", p.handlePhoneRemoveConfirm)
	post("/settings/mfa-off", p.handleMFAOff)
	post("/settings/mfa-off/confirm", p.handleMFAOffConfirm)
}

// signedIn returns the signed-in user, or sends the browser to log in.
func (p *Pages) signedIn(w http.ResponseWriter, r *http.Request) (*tessera.User, *tessera.Session, bool) {
	st := stateOf(r)
	if st.user == nil {
		if isJSON(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "sign in first", "redirect": Prefix + "/login"})
		} else {
			redirect(w, r, Prefix+"/login")
		}
		return nil, nil, false
	}
	return st.user, st.sess, true
}

// sessionRow is a session as the settings list it.
type sessionRow struct {
	ID, Device, IP, Created, Used string
	Current                       bool
}

type settingsData struct {
	MFA, AntiPhishing bool
	RecoveryLeft      string
	Passkeys          []account.PasskeyView
	Sessions          []sessionRow
}

// handleSettings handles GET /account/settings.
func (p *Pages) handleSettings(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := p.signedIn(w, r); !ok {
		return
	}
	p.settings(w, r, p.newView(r, "page.settings.title", stateOf(r).user, ""))
}

// settings renders the settings page with v (and its errors).
func (p *Pages) settings(w http.ResponseWriter, r *http.Request, v *view) {
	st := stateOf(r)
	ctx := r.Context()
	u, err := p.Accounts.Store.User(ctx, st.user.ID) // fresh after a change
	if err != nil {
		p.logError(r, "settings", err)
		u = st.user
	}
	v.User = u
	view := account.View(u)
	d := &settingsData{MFA: view.MFAEnabled, AntiPhishing: view.HasAntiPhishingCode}
	if n, err := p.Accounts.Store.RecoveryCodesLeft(ctx, u.ID); err == nil {
		d.RecoveryLeft = strconv.Itoa(n)
	}
	if d.Passkeys, err = p.Accounts.Passkeys(ctx, u); err != nil {
		p.logError(r, "settings: passkeys", err)
	}
	sessions, err := p.Accounts.Sessions(ctx, u)
	if err != nil {
		p.logError(r, "settings: sessions", err)
	}
	for _, s := range sessions {
		device := s.UserAgent
		if device == "" {
			device = v.T("page.settings.unknown_device")
		}
		if len(device) > 80 {
			device = device[:80] + "…"
		}
		d.Sessions = append(d.Sessions, sessionRow{ID: s.ID, Device: device, IP: s.IP, Current: s.ID == st.sess.ID,
			Created: s.CreatedAt.Format("2006-01-02 15:04 MST"), Used: s.LastUsedAt.Format("2006-01-02 15:04 MST")})
	}
	v.Data = d
	p.render(w, r, statusOf(v), "settings", v)
}

// changed answers a settings change: to the step-up first when the
// session must prove itself again, back to the settings with err, or on
// to the settings with a notice.
func (p *Pages) changed(w http.ResponseWriter, r *http.Request, err error, done string, fields map[string]string) {
	switch {
	case err == nil:
		redirect(w, r, Prefix+"/settings?done="+done)
	case tessera.ErrorCode(err) == tessera.EREAUTH:
		redirect(w, r, reauthURL(Prefix+"/settings"))
	default:
		v := p.newView(r, "page.settings.title", stateOf(r).user, "")
		p.fail(r, v, err, fields)
		p.settings(w, r, v)
	}
}

// handlePassword handles POST /account/settings/password.
func (p *Pages) handlePassword(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	err := p.Accounts.ChangePassword(r.Context(), u, sess, r.PostFormValue("old-password"), r.PostFormValue("new-password"), p.Meta(r))
	p.changed(w, r, err, "password_changed", map[string]string{"oldPassword": "old-password", "newPassword": "new-password"})
}

// ---- authenticator app and recovery codes ----

type totpData struct {
	// QR is the account model's PNG of the otpauth URI, a data: URL:
	// ours, so the template may put it in src.
	QR     template.URL
	Secret string
}

// handleTOTP handles POST /account/settings/totp: a new secret, shown as
// a QR code and as text.
func (p *Pages) handleTOTP(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	enrol, err := p.Accounts.CreateTOTP(r.Context(), u, sess)
	if err != nil {
		p.changed(w, r, err, "", nil)
		return
	}
	key, err := otp.NewKeyFromURL(enrol.URI)
	if err != nil {
		p.changed(w, r, err, "", nil)
		return
	}
	v := p.newView(r, "page.totp.title", u, "")
	v.Data = &totpData{QR: template.URL(enrol.QRCode), Secret: groups(key.Secret(), 4)}
	p.render(w, r, http.StatusOK, "totp", v)
}

// groups splits s into space-separated groups of n, easier to type.
func groups(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+n, len(s))])
	}
	return b.String()
}

// handleTOTPVerify handles POST /account/settings/totp/verify: the first
// code turns the app on; the first second factor brings recovery codes.
func (p *Pages) handleTOTPVerify(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	out, err := p.Accounts.VerifyChannel(r.Context(), u, sess, account.ChannelTOTP, r.PostFormValue("code"), p.Meta(r))
	if err != nil {
		if tessera.ErrorCode(err) == tessera.EREAUTH {
			p.changed(w, r, err, "", nil)
			return
		}
		// A wrong code: a new secret to scan would confuse; ask again
		// from the settings.
		p.changed(w, r, err, "", map[string]string{"x-otp": "code"})
		return
	}
	if len(out.RecoveryCodes) > 0 {
		p.showCodes(w, r, out.RecoveryCodes, "page.codes.title_first")
		return
	}
	redirect(w, r, Prefix+"/settings?done=totp_enrolled")
}

func (p *Pages) showCodes(w http.ResponseWriter, r *http.Request, codes []string, title string) {
	v := p.newView(r, title, stateOf(r).user, "")
	v.Data = codes
	p.render(w, r, http.StatusOK, "codes", v)
}

// handleRecoveryCodes handles POST /account/settings/recovery-codes: a
// new set; the old one stops working.
func (p *Pages) handleRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	codes, err := p.Accounts.RegenerateRecoveryCodes(r.Context(), u, sess, r.PostFormValue("regen-code"), p.Meta(r))
	if err != nil {
		p.changed(w, r, err, "", map[string]string{"x-otp": "regen-code", "code": "regen-code"})
		return
	}
	p.showCodes(w, r, codes, "page.codes.title")
}

// postedCodes are the recovery codes a codes page posted back: shown or
// downloaded as they are, never looked up (the server keeps only hashes).
func postedCodes(r *http.Request) []string {
	var out []string
	for _, c := range r.PostForm["code"] {
		if c = strings.TrimSpace(c); c != "" && len(c) <= 32 && len(out) < 20 {
			out = append(out, c)
		}
	}
	return out
}

// handleRecoveryCodesShow handles POST /account/settings/recovery-codes/show:
// the codes a passkey enrolment answered the script with.
func (p *Pages) handleRecoveryCodesShow(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := p.signedIn(w, r); !ok {
		return
	}
	p.showCodes(w, r, postedCodes(r), "page.codes.title_first")
}

// handleRecoveryCodesDownload handles POST /account/settings/recovery-codes/download:
// the codes on the page, as a text file.
func (p *Pages) handleRecoveryCodesDownload(w http.ResponseWriter, r *http.Request) {
	u, _, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	v := p.newView(r, "page.codes.title", u, "")
	var b strings.Builder
	b.WriteString(v.T("page.codes.file_header", "brand", p.Brand.Name, "email", u.Email) + "\r\n\r\n")
	for _, c := range postedCodes(r) {
		b.WriteString(c + "\r\n")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="recovery-codes.txt"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(b.String()))
}

// ---- passkeys ----

// handlePasskeyEnrolBegin handles POST /account/settings/passkeys/begin.
func (p *Pages) handlePasskeyEnrolBegin(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	opts, err := p.Accounts.BeginPasskeyEnrolment(r.Context(), u, sess, p.Meta(r))
	p.replyJSON(w, r, opts, err)
}

// handlePasskeyEnrolFinish handles POST /account/settings/passkeys/finish.
func (p *Pages) handlePasskeyEnrolFinish(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	req, err := decodePasskey(r)
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	pk, err := p.Accounts.FinishPasskeyEnrolment(r.Context(), u, sess, req.ProcessingID, req.Name, req.Credential, p.Meta(r))
	if err != nil {
		p.replyJSON(w, r, nil, err)
		return
	}
	p.replyJSON(w, r, map[string]any{"redirect": Prefix + "/settings?done=passkey_added", "recoveryCodes": pk.RecoveryCodes}, nil)
}

// handlePasskeyRename handles POST /account/settings/passkeys/rename.
func (p *Pages) handlePasskeyRename(w http.ResponseWriter, r *http.Request) {
	u, _, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	_, err := p.Accounts.RenamePasskey(r.Context(), u, r.PostFormValue("id"), r.PostFormValue("name"))
	p.changed(w, r, err, "passkey_renamed", nil)
}

// handlePasskeyRemove handles POST /account/settings/passkeys/remove.
func (p *Pages) handlePasskeyRemove(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	p.changed(w, r, p.Accounts.DeletePasskey(r.Context(), u, sess, r.PostFormValue("id"), p.Meta(r)), "passkey_removed", nil)
}

// ---- sessions ----

// handleSessionEnd handles POST /account/settings/sessions/end.
func (p *Pages) handleSessionEnd(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	id := r.PostFormValue("id")
	err := p.Accounts.RevokeSession(r.Context(), u, id, p.Meta(r))
	if err == nil && id == sess.ID {
		setCookie(w, r, sessionCookie, "", time.Time{})
		redirect(w, r, Prefix+"/login?done=logged_out")
		return
	}
	p.changed(w, r, err, "session_ended", nil)
}

// handleSessionsEndOthers handles POST /account/settings/sessions/end-others.
func (p *Pages) handleSessionsEndOthers(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	_, err := p.Accounts.RevokeOtherSessions(r.Context(), u, sess, p.Meta(r))
	p.changed(w, r, err, "sessions_ended", nil)
}

// ---- one-time-token flows: anti-phishing code, email and phone, MFA off ----

// tokenStep asks for the token just sent (and any fields more).
func (p *Pages) tokenStep(w http.ResponseWriter, r *http.Request, v *view, intro, action string, extra []hidden, fields []field) {
	all := append([]field{{Name: "token", Type: "text", Label: v.T("page.field.token"), Auto: "one-time-code", Mode: "numeric"}}, fields...)
	p.step(w, r, statusOf(v), v, &stepData{Intro: []string{intro}, Action: action, Hidden: extra, Fields: all, Submit: "page.continue",
		Links: []link{{Prefix + "/settings", v.T("page.cancel")}}})
}

// tokenFields maps the account model's field names to the token steps'.
var tokenFields = map[string]string{"oneTimeToken": "token", "code": "token", "antiPhishingCode": "anti-phishing",
	"newUserKey": "new-key", "newEmail": "new-key", "newPhoneNumber": "new-key", "newKey": "new-key", "phone": "phone"}

func sentTo(v *view, sent *account.CodeSent) string {
	return v.T("page.token.sent", "to", sent.Destination)
}

// handleAntiPhishing handles POST /account/settings/anti-phishing: a token
// by email to add or change the code.
func (p *Pages) handleAntiPhishing(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	changing := u.AntiPhishingSealed != nil
	sent, err := p.Accounts.SendAntiPhishing(r.Context(), u, sess, changing)
	if err != nil {
		p.changed(w, r, err, "", nil)
		return
	}
	v := p.newView(r, "page.antiphishing.title", u, "")
	p.antiPhishingStep(w, r, v, sentTo(v, sent), changing)
}

func (p *Pages) antiPhishingStep(w http.ResponseWriter, r *http.Request, v *view, intro string, changing bool) {
	p.tokenStep(w, r, v, intro, Prefix+"/settings/anti-phishing/set", []hidden{{"changing", strconv.FormatBool(changing)}, {"intro", intro}},
		[]field{{Name: "anti-phishing", Type: "text", Label: v.T("page.field.antiphishing"), Auto: "off", Hint: v.T("page.hint.antiphishing")}})
}

// handleAntiPhishingSet handles POST /account/settings/anti-phishing/set.
func (p *Pages) handleAntiPhishingSet(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	changing := r.PostFormValue("changing") == "true"
	_, err := p.Accounts.SetAntiPhishing(r.Context(), u, sess, changing, r.PostFormValue("token"), r.PostFormValue("anti-phishing"), p.Meta(r))
	if err == nil || tessera.ErrorCode(err) == tessera.EREAUTH {
		p.changed(w, r, err, "anti_phishing_set", nil)
		return
	}
	v := p.newView(r, "page.antiphishing.title", u, "")
	v.Values["anti-phishing"] = r.PostFormValue("anti-phishing")
	p.fail(r, v, err, tokenFields)
	p.antiPhishingStep(w, r, v, r.PostFormValue("intro"), changing)
}

// handleKeyChange handles POST /account/settings/email and
// /account/settings/phone/change: a token to the key in use first.
func (p *Pages) handleKeyChange(keyType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, sess, ok := p.signedIn(w, r)
		if !ok {
			return
		}
		sent, err := p.Accounts.SendKeyChanging(r.Context(), u, sess, keyType, p.Meta(r))
		if err != nil {
			p.changed(w, r, err, "", nil)
			return
		}
		v := p.newView(r, keyTitle(keyType), u, sent.ProcessingID)
		p.keyNewStep(w, r, v, sentTo(v, sent), keyType)
	}
}

func keyTitle(keyType string) string {
	if keyType == account.DestinationPhone {
		return "page.phone.title"
	}
	return "page.email.title"
}

func (p *Pages) keyNewStep(w http.ResponseWriter, r *http.Request, v *view, intro, keyType string) {
	label, typ := "page.field.new_email", "email"
	if keyType == account.DestinationPhone {
		label, typ = "page.field.new_phone", "tel"
	}
	p.tokenStep(w, r, v, intro, Prefix+"/settings/key/new", []hidden{{"keyType", keyType}, {"intro", intro}},
		[]field{{Name: "new-key", Type: typ, Label: v.T(label), Auto: map[string]string{"email": "email", "tel": "tel"}[typ]}})
}

// handleKeyChangeNew handles POST /account/settings/key/new: the first
// token and the new address, which gets a token of its own.
func (p *Pages) handleKeyChangeNew(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	flow, keyType, newKey := r.PostFormValue("processingId"), r.PostFormValue("keyType"), strings.TrimSpace(r.PostFormValue("new-key"))
	sent, err := p.Accounts.SendKeyChangingNewKey(r.Context(), u, sess, flow, r.PostFormValue("token"), newKey)
	v := p.newView(r, keyTitle(keyType), u, flow)
	if err != nil {
		if tessera.ErrorCode(err) == tessera.EREAUTH {
			p.changed(w, r, err, "", nil)
			return
		}
		v.Values["new-key"] = newKey
		p.fail(r, v, err, tokenFields)
		p.keyNewStep(w, r, v, r.PostFormValue("intro"), keyType)
		return
	}
	p.keyConfirmStep(w, r, v, sentTo(v, sent), newKey)
}

func (p *Pages) keyConfirmStep(w http.ResponseWriter, r *http.Request, v *view, intro, newKey string) {
	p.tokenStep(w, r, v, intro, Prefix+"/settings/key/confirm", []hidden{{"new-key", newKey}, {"intro", intro}}, nil)
}

// handleKeyChangeConfirm handles POST /account/settings/key/confirm: the
// new address's token replaces the key.
func (p *Pages) handleKeyChangeConfirm(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	flow, newKey := r.PostFormValue("processingId"), r.PostFormValue("new-key")
	_, err := p.Accounts.ChangeKey(r.Context(), u, sess, flow, newKey, r.PostFormValue("token"), p.Meta(r))
	if err == nil || tessera.ErrorCode(err) == tessera.EREAUTH {
		p.changed(w, r, err, "key_changed", nil)
		return
	}
	v := p.newView(r, "page.email.title", u, flow)
	p.fail(r, v, err, tokenFields)
	p.keyConfirmStep(w, r, v, r.PostFormValue("intro"), newKey)
}

// handlePhoneAdd handles POST /account/settings/phone: a token to a new
// phone number (E.164).
func (p *Pages) handlePhoneAdd(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	phone := strings.TrimSpace(r.PostFormValue("phone"))
	sent, err := p.Accounts.SendKeyAdding(r.Context(), u, sess, account.DestinationPhone, phone)
	if err != nil {
		if tessera.ErrorCode(err) == tessera.EREAUTH {
			p.changed(w, r, err, "", nil)
			return
		}
		v := p.newView(r, "page.settings.title", u, "")
		v.Values["phone"] = phone
		p.fail(r, v, err, map[string]string{"newPhoneNumber": "phone"})
		p.settings(w, r, v)
		return
	}
	v := p.newView(r, "page.phone.title", u, "")
	p.phoneConfirmStep(w, r, v, sentTo(v, sent), phone)
}

func (p *Pages) phoneConfirmStep(w http.ResponseWriter, r *http.Request, v *view, intro, phone string) {
	p.tokenStep(w, r, v, intro, Prefix+"/settings/phone/confirm", []hidden{{"phone", phone}, {"intro", intro}}, nil)
}

// handlePhoneAddConfirm handles POST /account/settings/phone/confirm.
func (p *Pages) handlePhoneAddConfirm(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	phone := r.PostFormValue("phone")
	_, err := p.Accounts.AddKey(r.Context(), u, sess, phone, r.PostFormValue("token"), p.Meta(r))
	if err == nil || tessera.ErrorCode(err) == tessera.EREAUTH {
		p.changed(w, r, err, "phone_added", nil)
		return
	}
	v := p.newView(r, "page.phone.title", u, "")
	p.fail(r, v, err, tokenFields)
	p.phoneConfirmStep(w, r, v, r.PostFormValue("intro"), phone)
}

// handlePhoneRemove handles POST /account/settings/phone/remove: a token
// to the phone, which must still be the user's to remove it.
func (p *Pages) handlePhoneRemove(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	sent, err := p.Accounts.SendKeyRemoving(r.Context(), u, sess, account.DestinationPhone)
	if err != nil {
		p.changed(w, r, err, "", nil)
		return
	}
	v := p.newView(r, "page.phone.remove_title", u, "")
	p.phoneRemoveStep(w, r, v, sentTo(v, sent))
}

func (p *Pages) phoneRemoveStep(w http.ResponseWriter, r *http.Request, v *view, intro string) {
	p.tokenStep(w, r, v, intro, Prefix+"/settings/phone/remove/confirm", []hidden{{"intro", intro}}, nil)
}

// handlePhoneRemoveConfirm handles POST /account/settings/phone/remove/confirm.
func (p *Pages) handlePhoneRemoveConfirm(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	_, err := p.Accounts.RemoveKey(r.Context(), u, sess, account.DestinationPhone, r.PostFormValue("token"), p.Meta(r))
	if err == nil || tessera.ErrorCode(err) == tessera.EREAUTH {
		p.changed(w, r, err, "phone_removed", nil)
		return
	}
	v := p.newView(r, "page.phone.remove_title", u, "")
	p.fail(r, v, err, tokenFields)
	p.phoneRemoveStep(w, r, v, r.PostFormValue("intro"))
}

// handleMFAOff handles POST /account/settings/mfa-off: a token by email
// to turn every second factor off.
func (p *Pages) handleMFAOff(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	sent, err := p.Accounts.SendMFADisabling(r.Context(), u, sess, account.DestinationEmail, p.Meta(r))
	if err != nil {
		p.changed(w, r, err, "", nil)
		return
	}
	v := p.newView(r, "page.mfaoff.title", u, sent.ProcessingID)
	intro := sentTo(v, sent)
	p.tokenStep(w, r, v, intro, Prefix+"/settings/mfa-off/confirm", []hidden{{"intro", intro}}, nil)
}

// handleMFAOffConfirm handles POST /account/settings/mfa-off/confirm.
func (p *Pages) handleMFAOffConfirm(w http.ResponseWriter, r *http.Request) {
	u, sess, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	flow := r.PostFormValue("processingId")
	_, err := p.Accounts.DisableMFA(r.Context(), u, sess, flow, account.DestinationEmail, r.PostFormValue("token"), p.Meta(r))
	if err == nil || tessera.ErrorCode(err) == tessera.EREAUTH {
		p.changed(w, r, err, "mfa_off", nil)
		return
	}
	v := p.newView(r, "page.mfaoff.title", u, flow)
	p.fail(r, v, err, tokenFields)
	intro := r.PostFormValue("intro")
	p.tokenStep(w, r, v, intro, Prefix+"/settings/mfa-off/confirm", []hidden{{"intro", intro}}, nil)
}
