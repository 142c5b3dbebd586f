package account

import (
	"context"
	"slices"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
)

// Flow states. Each flow type moves through its own, forward only, by
// the store's compare-and-set (AdvanceFlow).
const (
	stateSecondFactor   = "second_factor"    // login, reauthentication: the password is proven
	stateCodeSent       = "code_sent"        // registration, password recovery, MFA disabling
	stateNoCode         = "no_code"          // registration: the address has an account, or the cooldown held the code back
	stateRecovering     = "recovering"       // key recovery: a login turned to recovering a lost key
	stateCurrentKeySent = "current_key_sent" // key change: token sent to the key in use
	stateNewKeySent     = "new_key_sent"     // key change: the current key is proven, token sent to the new one
)

// passwordFlows are the flows that stand on the password they were
// started with: a new password ends them.
var passwordFlows = []tessera.FlowType{tessera.FlowLogin, tessera.FlowReauthentication, tessera.FlowKeyRecovery}

// newFlow returns a flow of typ in state for u, expiring with its codes;
// the caller stores it.
func (s *Service) newFlow(typ tessera.FlowType, state string, u *tessera.User, sess *tessera.Session, meta Meta) *tessera.Flow {
	now := s.now()
	f := &tessera.Flow{ID: uuid.NewString(), Type: typ, State: state, RequiredAAL: 1, AAL: 1, CSRFSecret: newSecret(),
		MaxAttempts: codeMaxAttempts, CreatedAt: now, ExpiresAt: now.Add(s.CodeTTL), UserAgent: meta.UserAgent, IP: meta.IP}
	if u != nil {
		f.UserID = u.ID
	}
	if sess != nil {
		f.SessionID = sess.ID
	}
	return f
}

// userFlow finds the flow a signed-in user's call continues: the one
// named by processingID, or else (clients that follow the flows document
// and send none) the user's newest live flow of typ. It must be the
// user's, of typ, and in one of states.
func (s *Service) userFlow(ctx context.Context, u *tessera.User, typ tessera.FlowType, processingID string, states ...string) (*tessera.Flow, error) {
	var f *tessera.Flow
	var err error
	if processingID != "" {
		if _, perr := uuid.Parse(processingID); perr != nil {
			return nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be the processingId the token request returned"})
		}
		f, err = s.Store.Flow(ctx, processingID)
	} else {
		f, err = s.Store.LatestFlow(ctx, u.ID, typ, s.now())
	}
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && (f.UserID != u.ID || f.Type != typ || !f.UsedAt.IsZero() ||
		!s.now().Before(f.ExpiresAt) || !slices.Contains(states, f.State))) {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "No such step in progress: ask for a new token")
	}
	return f, err
}

// reserveAttempt counts an attempt on flow id (five per flow, whatever
// its codes' own caps) and returns the flow, answering as a code would.
func (s *Service) reserveAttempt(ctx context.Context, id string) (*tessera.Flow, error) {
	f, err := s.Store.ReserveFlowAttempt(ctx, id, s.now())
	switch tessera.ErrorCode(err) {
	case "":
		return f, nil
	case tessera.ENOTFOUND:
		return nil, flowGone()
	case tessera.ELOCKED:
		return nil, tessera.Errorf(tessera.ELOCKED, "Too many wrong codes: ask for a new one")
	case tessera.EEXPIRED:
		return nil, tessera.Errorf(tessera.EEXPIRED, "The code expired: ask for a new one")
	}
	return nil, err
}
