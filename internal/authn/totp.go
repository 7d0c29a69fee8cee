package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// TOTP parameters: the ones every authenticator app supports.
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func totpAAD(userID string) []byte { return []byte("ward/totp/v1/" + userID) }

// ErrUnknownUser is returned by EnrollTOTP for a username that does not
// exist.
var ErrUnknownUser = errors.New("no such user")

// EnrollTOTP gives a user a new TOTP secret (replacing any earlier one) and
// returns the otpauth:// URI to show once, as text or QR code. The secret is
// stored sealed; from then on a password login also needs the current code.
func (s *Service) EnrollTOTP(ctx context.Context, username string) (uri string, err error) {
	u, err := s.st.UserByName(ctx, s.o.Tenant, username)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrUnknownUser
	}
	if err != nil {
		return "", err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Ward", AccountName: username, Period: 30, SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", fmt.Errorf("generate TOTP secret: %w", err)
	}
	sealed, err := s.sealer.Seal(s.o.SealKeyID, []byte(key.Secret()), totpAAD(u.ID))
	if err != nil {
		return "", err
	}
	now := s.o.Now().UTC()
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{&store.TOTPEnrollment{UserID: u.ID, Sealed: sealed}}}, &audit.Record{Time: now, Tenant: u.Tenant, Actor: "cli", Role: "system", Action: "totp-enroll", Entities: []string{"user/" + u.ID}})
	if err != nil {
		return "", err
	}
	return key.URL(), nil
}

// checkTOTP verifies code against the user's secret for the current time
// step and one step either side, refusing any step already used. It returns
// the accepted step, or a reason code.
func (s *Service) checkTOTP(u *store.User, code string, now time.Time) (int64, string) {
	if code == "" {
		return 0, "totp-required"
	}
	secret, err := s.sealer.Open(u.TOTPSecret, totpAAD(u.ID))
	if err != nil {
		return 0, "totp-unsealable"
	}
	step := now.Unix() / int64(totpOpts.Period)
	for _, d := range []int64{0, -1, 1} {
		st := step + d
		if st <= u.TOTPLastStep {
			continue // replay: every code works once
		}
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(st*int64(totpOpts.Period), 0), totpOpts)
		if err != nil {
			return 0, "totp-unsealable"
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return st, ""
		}
	}
	return 0, "totp-invalid"
}
