package invitation

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"roster.dev/roster/api/v1alpha1"
)

// Labels on the Secrets that hold token records. The records live in the
// operator's namespace, where tenants cannot write: a Secret elsewhere that
// looks like one is never read. The operator's cache holds only Secrets
// with SecretSelector in that namespace, never the cluster's other Secrets.
const (
	// LabelManagedBy marks the Secrets Roster writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value.
	ManagedBy = "roster"
	// LabelPurpose holds the record's Purpose.
	LabelPurpose = "iam.roster.dev/token-purpose"
	// LabelUserUID holds the UID of the User the record belongs to.
	LabelUserUID = "iam.roster.dev/user-uid"
	// LabelUserNamespace and LabelUserName name that User.
	LabelUserNamespace = "iam.roster.dev/user-namespace"
	LabelUserName      = "iam.roster.dev/user-name"
)

// SecretSelector selects the Secrets that hold token records.
func SecretSelector() labels.Selector {
	sel, _ := labels.Parse(LabelPurpose) // every record carries the label
	return sel
}

// SecretName is the name of the Secret holding the record of the User's
// token for the purpose. There is one per User and purpose, so a new token
// replaces the older one's hash: the older link stops working.
func SecretName(p Purpose, uid string) string { return "roster-" + string(p) + "-" + uid }

// SecretKey is where the User's record for the purpose is kept: in the
// operator's namespace.
func SecretKey(namespace string, user *v1alpha1.User, p Purpose) types.NamespacedName {
	return types.NamespacedName{Namespace: namespace, Name: SecretName(p, string(user.UID))}
}

// NewSecret returns the Secret that holds the User's record for the
// purpose, in the operator's namespace, labelled for the cache, the index
// and the User it belongs to (an owner reference cannot cross namespaces:
// the User controller deletes the records when the User goes). WriteTo
// fills its data.
func NewSecret(namespace string, user *v1alpha1.User, p Purpose) *corev1.Secret {
	key := SecretKey(namespace, user, p)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace,
			Name:      key.Name,
			Labels: map[string]string{
				LabelManagedBy:     ManagedBy,
				LabelPurpose:       string(p),
				LabelUserUID:       string(user.UID),
				LabelUserNamespace: user.Namespace,
				LabelUserName:      user.Name,
			},
		},
		Type: corev1.SecretTypeOpaque,
	}
}

// Owner is the User a record Secret belongs to, and its UID.
func Owner(s *corev1.Secret) (types.NamespacedName, types.UID) {
	l := s.Labels
	return types.NamespacedName{Namespace: l[LabelUserNamespace], Name: l[LabelUserName]}, types.UID(l[LabelUserUID])
}

// Record is what the cluster knows of a User's token for one purpose, kept in
// a Secret owned by the User.
//
// Why a Secret and not the User's status: readers of Users (often everyone
// on a team) see status, while RBAC treats Secrets as sensitive; the record
// outlives a lost status, so a restored status does not resend anything;
// and the web pages, served by every replica, can claim a token with an
// optimistic-locked write to the Secret without racing the controller's
// status writes.
type Record struct {
	// Hash is the SHA-256 of the outstanding token's secret part, nil when
	// no token is outstanding (none issued, used or revoked).
	Hash []byte
	// IssuedAt and ExpiresAt bound the outstanding token's life.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// SentAt is when the email carrying the token was handed to the mail
	// server; zero until then, so an unsent token is issued again.
	SentAt time.Time
	// SendCount counts the emails sent for this purpose.
	SendCount int32
	// HourStart and HourCount count the emails sent in the hour that
	// started at HourStart, for the limit on requested links.
	HourStart time.Time
	HourCount int32
	// Request is the request annotation's value the newest token answered.
	Request string
	// UsedAt is when a person submitted the token; CompletedAt is when the
	// store accepted their password.
	UsedAt      time.Time
	CompletedAt time.Time
	// RevokedAt is when the outstanding token was revoked (spec.invite set
	// to false).
	RevokedAt time.Time
	// FailedSends counts the attempts to send this purpose's email that
	// failed in a row; FailedAt is when the last one failed and SendError
	// what the mail server answered. A sent email resets them.
	FailedSends int32
	FailedAt    time.Time
	SendError   string
	// RefusedAt is when the store last refused a password submitted with
	// the token for a reason no other password can get past (the
	// directory wants an encrypted connection, say), and StoreError what it
	// answered. A later success clears them.
	RefusedAt  time.Time
	StoreError string
}

// Errors from Check, worded for the page a person sees.
var (
	// ErrVoided means the token does not match the record: a newer one
	// replaced it, it was revoked, or it was tampered with.
	ErrVoided = errors.New("the link has been replaced or cancelled")
	// ErrUsed means the token was used already.
	ErrUsed = errors.New("the link has been used")
	// ErrExpired means the token's life is over.
	ErrExpired = errors.New("the link has expired")
)

// Check says whether t is the record's outstanding, unexpired token.
func (r Record) Check(t Token, now time.Time) error {
	switch {
	case r.Hash == nil && !r.UsedAt.IsZero() && r.RevokedAt.IsZero():
		return ErrUsed
	case r.Hash == nil || !t.Matches(r.Hash):
		return ErrVoided
	case !now.Before(r.ExpiresAt):
		return ErrExpired
	}
	return nil
}

// Outstanding reports whether a token is issued, not used, not revoked and
// not expired at now.
func (r Record) Outstanding(now time.Time) bool {
	return r.Hash != nil && now.Before(r.ExpiresAt)
}

// Expired reports whether the newest sent token expired without being used.
func (r Record) Expired(now time.Time) bool {
	return r.Hash != nil && !r.SentAt.IsZero() && !now.Before(r.ExpiresAt)
}

// Issue replaces the outstanding token, if any, with t, valid for ttl from
// now. The token counts as sent only once MarkSent is called.
func (r *Record) Issue(t Token, now time.Time, ttl time.Duration) {
	now = seconds(now)
	r.Hash = t.Hash()
	r.IssuedAt, r.ExpiresAt = now, now.Add(ttl)
	r.SentAt, r.UsedAt, r.CompletedAt, r.RevokedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
}

// MarkSent records that the email with the outstanding token was sent in
// answer to request.
func (r *Record) MarkSent(now time.Time, request string) {
	r.SentAt, r.Request = seconds(now), request
	r.FailedSends, r.FailedAt, r.SendError = 0, time.Time{}, ""
	r.SendCount++
	if r.SentInHour(now) == 0 {
		r.HourStart, r.HourCount = seconds(now), 0
	}
	r.HourCount++
}

// Mail retries back off: the first after FirstRetry, each later one after
// twice as long as the one before, but never longer than MaxRetry.
const (
	FirstRetry = 5 * time.Second
	MaxRetry   = 5 * time.Minute
)

// maxSendError bounds the answer (of the mail server or the store) kept in
// the record.
const maxSendError = 1024

// MarkFailed records that sending the email with the outstanding token
// failed at now with err.
func (r *Record) MarkFailed(now time.Time, err error) {
	r.FailedSends++
	r.FailedAt = seconds(now)
	r.SendError = err.Error()
	if len(r.SendError) > maxSendError {
		r.SendError = r.SendError[:maxSendError]
	}
}

// RetryAt is when the email may be tried again after the failures in a
// row the record counts; zero when none failed.
func (r Record) RetryAt() time.Time {
	if r.FailedSends <= 0 || r.FailedAt.IsZero() {
		return time.Time{}
	}
	wait := FirstRetry
	for i := int32(1); i < r.FailedSends && wait < MaxRetry; i++ {
		wait *= 2
	}
	return r.FailedAt.Add(min(wait, MaxRetry))
}

// SentInHour is how many emails were sent in the hour now falls in, and
// HourEnds when that hour ends.
func (r Record) SentInHour(now time.Time) int32 {
	if r.HourStart.IsZero() || !now.Before(r.HourEnds()) {
		return 0
	}
	return r.HourCount
}

// HourEnds is when the hour of HourStart ends.
func (r Record) HourEnds() time.Time { return r.HourStart.Add(time.Hour) }

// Revoke makes the outstanding token unusable.
func (r *Record) Revoke(now time.Time) {
	r.Hash, r.RevokedAt = nil, seconds(now)
}

// Claim marks the outstanding token used and returns its hash, so that Unclaim
// can give it back if setting the password fails.
func (r *Record) Claim(now time.Time) []byte {
	h := r.Hash
	r.Hash, r.UsedAt = nil, seconds(now)
	return h
}

// Unclaim undoes Claim: the token works again.
func (r *Record) Unclaim(hash []byte) {
	r.Hash, r.UsedAt = hash, time.Time{}
}

// Complete records that the store accepted the new password.
func (r *Record) Complete(now time.Time) {
	r.CompletedAt, r.RefusedAt, r.StoreError = seconds(now), time.Time{}, ""
}

// Refuse records that the store refused the password for good at now with
// err; the token stays usable for when the store is fixed.
func (r *Record) Refuse(now time.Time, err error) {
	r.RefusedAt = seconds(now)
	r.StoreError = err.Error()
	if len(r.StoreError) > maxSendError {
		r.StoreError = r.StoreError[:maxSendError]
	}
}

// seconds is the precision a record keeps (and Kubernetes shows times in).
func seconds(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// Keys of the record in the Secret's data.
const (
	keyHash        = "tokenHash"
	keyIssuedAt    = "issuedAt"
	keyExpiresAt   = "expiresAt"
	keySentAt      = "sentAt"
	keySendCount   = "sendCount"
	keyRequest     = "request"
	keyUsedAt      = "usedAt"
	keyCompletedAt = "completedAt"
	keyRevokedAt   = "revokedAt"
	keyHourStart   = "hourStart"
	keyHourCount   = "hourCount"
	keyFailedSends = "failedSends"
	keyFailedAt    = "failedAt"
	keySendError   = "sendError"
	keyRefusedAt   = "refusedAt"
	keyStoreError  = "storeError"
)

// ChangedByPages reports whether a record went from old to new by a change
// the User controller did not make itself: what the pages write when a link
// is used (a token claimed or given back, a password set or refused), or an
// expiry changed by hand. What the controller writes (a token issued, an
// email sent or failed, a token revoked) is not such a change; the pass
// that wrote it already knows.
func ChangedByPages(old, new *corev1.Secret) bool {
	if string(old.Data[keyIssuedAt]) != string(new.Data[keyIssuedAt]) {
		return false // a fresh token, issued by the controller
	}
	for _, key := range []string{keyUsedAt, keyCompletedAt, keyRefusedAt, keyStoreError, keyExpiresAt} {
		if string(old.Data[key]) != string(new.Data[key]) {
			return true
		}
	}
	return false
}

// ReadRecord reads the record a Secret holds.
func ReadRecord(s *corev1.Secret) (Record, error) {
	var r Record
	var err error
	d := s.Data
	if h := d[keyHash]; len(h) > 0 {
		if r.Hash, err = hex.DecodeString(string(h)); err != nil {
			return r, fmt.Errorf("secret %s/%s: %s: %w", s.Namespace, s.Name, keyHash, err)
		}
	}
	for key, dst := range map[string]*time.Time{
		keyIssuedAt: &r.IssuedAt, keyExpiresAt: &r.ExpiresAt, keySentAt: &r.SentAt,
		keyUsedAt: &r.UsedAt, keyCompletedAt: &r.CompletedAt, keyRevokedAt: &r.RevokedAt, keyHourStart: &r.HourStart,
		keyFailedAt: &r.FailedAt, keyRefusedAt: &r.RefusedAt,
	} {
		if v := d[key]; len(v) > 0 {
			if *dst, err = time.Parse(time.RFC3339, string(v)); err != nil {
				return r, fmt.Errorf("secret %s/%s: %s: %w", s.Namespace, s.Name, key, err)
			}
		}
	}
	for key, dst := range map[string]*int32{keySendCount: &r.SendCount, keyHourCount: &r.HourCount, keyFailedSends: &r.FailedSends} {
		if v := d[key]; len(v) > 0 {
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil {
				return r, fmt.Errorf("secret %s/%s: %s: %w", s.Namespace, s.Name, key, err)
			}
			*dst = int32(n)
		}
	}
	r.Request = string(d[keyRequest])
	r.SendError = string(d[keySendError])
	r.StoreError = string(d[keyStoreError])
	return r, nil
}

// WriteTo stores the record in the Secret's data, replacing what was there.
func (r Record) WriteTo(s *corev1.Secret) {
	d := map[string][]byte{}
	if r.Hash != nil {
		d[keyHash] = []byte(hex.EncodeToString(r.Hash))
	}
	for key, t := range map[string]time.Time{
		keyIssuedAt: r.IssuedAt, keyExpiresAt: r.ExpiresAt, keySentAt: r.SentAt,
		keyUsedAt: r.UsedAt, keyCompletedAt: r.CompletedAt, keyRevokedAt: r.RevokedAt, keyHourStart: r.HourStart,
		keyFailedAt: r.FailedAt, keyRefusedAt: r.RefusedAt,
	} {
		if !t.IsZero() {
			d[key] = []byte(t.UTC().Format(time.RFC3339))
		}
	}
	if r.SendCount > 0 {
		d[keySendCount] = []byte(strconv.Itoa(int(r.SendCount)))
	}
	if r.HourCount > 0 {
		d[keyHourCount] = []byte(strconv.Itoa(int(r.HourCount)))
	}
	if r.Request != "" {
		d[keyRequest] = []byte(r.Request)
	}
	if r.FailedSends > 0 {
		d[keyFailedSends] = []byte(strconv.Itoa(int(r.FailedSends)))
	}
	if r.SendError != "" {
		d[keySendError] = []byte(r.SendError)
	}
	if r.StoreError != "" {
		d[keyStoreError] = []byte(r.StoreError)
	}
	s.Data = d
	s.StringData = nil
}
