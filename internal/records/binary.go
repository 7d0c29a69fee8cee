package records

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/docseal"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// ContentExtension is the meta extension of a Binary version whose
// content is kept as a sealed object (docs/documents.md): its size,
// SHA-256 and SHA-1 (base64) of the plaintext, the object, the creator.
const ContentExtension = "https://ward.health/fhir/StructureDefinition/binary-content"

// streamKeyer is the keyring's optional capability to seal content
// streams (keys.Manager has it).
type streamKeyer interface {
	StreamKey(keyID string) ([]byte, error)
}

// Content configures where Binary content is kept.
type Content struct {
	// Objects keeps the sealed content; nil: raw content is not enabled.
	Objects blob.Store
	// MaxBytes bounds one upload (0: 4 GiB).
	MaxBytes int64
	// InlineMax: a Binary read as FHIR JSON carries data only up to this
	// size (0: 1 MiB).
	InlineMax int64
	// AttachmentMax: inline Attachment.data larger than this is moved to
	// a Binary on write (0: 64 KiB; negative: never).
	AttachmentMax int64
	// OnCorrupt is called (once per download) when stored content fails
	// its integrity check, with ids only: for logs and metrics.
	OnCorrupt func(tenant, ref string)
	// MaxStreams bounds the content streams open at once (0: 256): each
	// holds a few segment buffers until the client has its last byte, so
	// a thousand concurrent downloads queue for a slot instead of
	// holding a thousand sets of buffers.
	MaxStreams int

	streams chan struct{}
}

func (c *Content) defaults() {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 4 << 30
	}
	if c.InlineMax <= 0 {
		c.InlineMax = 1 << 20
	}
	if c.AttachmentMax == 0 {
		c.AttachmentMax = 64 << 10
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 256
	}
	c.streams = make(chan struct{}, c.MaxStreams)
}

// stream takes a content stream slot, waiting for one (until ctx is
// done); release gives it back, once.
func (c *Content) stream(ctx context.Context) (release func(), err error) {
	select {
	case c.streams <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a content stream: %v", problem.ErrUnavailable, ctx.Err())
	}
	var once sync.Once
	return func() { once.Do(func() { <-c.streams }) }, nil
}

// ContentEnabled reports whether raw Binary content can be stored.
func (s *Service) ContentEnabled() bool { return s.content.Objects != nil }

// ContentLimits returns the content settings in effect.
func (s *Service) ContentLimits() Content { return s.content }

// Upload is raw content for a Binary.
type Upload struct {
	// ID: "" creates a Binary with a new id; else the Binary is updated
	// (or created with this id).
	ID      string
	IfMatch *int64
	// ContentType is the media type the client sent.
	ContentType string
	// SecurityContext is a reference ("Type/id") whose access decides
	// the Binary's; "": the creator and admins.
	SecurityContext string
	Body            io.Reader
	// Size is the declared size (-1: unknown); SHA1 the declared hash
	// (nil: none). A mismatch refuses the upload (422), nothing kept.
	Size int64
	SHA1 []byte
}

// BinaryMeta is what Ward keeps about one version's content.
type BinaryMeta struct {
	ContentType string
	Size        int64
	SHA256      []byte
	SHA1        []byte
	Object      string // "" : content inline in the resource (data)
	Creator     string
	Security    string
	// Segment is the sealed stream's segment size (docseal).
	Segment int
	// KeyID is the data key the content's stream key derives from: the
	// tenant's current one when it was sealed, which a rotation
	// (keys.RotateData) later replaces for new writes only.
	KeyID string
}

// PutBinary stores raw content as a new version of a Binary.
func (r *Repo) PutBinary(ctx context.Context, up Upload) (out *Resource, created bool, err error) {
	action, a := "update", authz.Update
	if up.ID == "" {
		action, a = "create", authz.Create
	}
	rec := r.record(action, "Binary")
	if err := r.decide(a, rec); err != nil {
		return nil, false, err
	}
	if !r.s.ContentEnabled() {
		return nil, false, problem.New(problem.ErrUnsupportedMedia, "not-supported", "raw Binary content is not enabled on this server")
	}
	var version int64 = 1
	if up.ID == "" {
		up.ID = r.s.newID()
	} else if version, err = r.binaryNext(ctx, rec, up.ID, up.IfMatch); err != nil {
		return nil, false, err
	}
	if err := r.decideSecurity(ctx, rec, up.SecurityContext, ""); err != nil {
		return nil, false, err
	}
	m, err := r.storeContent(ctx, rec, up, version)
	if err != nil {
		return nil, false, err
	}
	doc := binaryDoc(up.ID, m)
	res := &fhir.Resource{Type: "Binary", ID: up.ID, Doc: doc}
	if err := r.validate(res, rec); err != nil {
		r.dropObject(m.Object)
		return nil, false, err
	}
	now := r.s.now().UTC()
	plain, sealed, ix, err := r.seal(ctx, res, version, now)
	if err == nil {
		w := store.Write{Tenant: r.subj.Tenant, Type: "Binary", ID: up.ID, Version: version, LastUpdated: now, Body: sealed, Index: ix}
		rec.Detail = "bytes=" + strconv.FormatInt(m.Size, 10)
		err = r.commitWrite(ctx, w, rec, nil, doc)
	}
	if err != nil {
		// The object is pending until a version names it: drop it now
		// (the sweeper would otherwise).
		r.dropObject(m.Object)
		return nil, false, err
	}
	return &Resource{Type: "Binary", ID: up.ID, Version: version, LastUpdated: now, JSON: plain}, version == 1, nil
}

// binaryNext decides an update of Binary id and returns the version it
// will create.
func (r *Repo) binaryNext(ctx context.Context, rec *audit.Record, id string, ifMatch *int64) (int64, error) {
	v, err := r.s.st.Current(ctx, r.subj.Tenant, "Binary", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if ifMatch != nil && *ifMatch != 0 {
			return 0, r.refuse(rec, audit.OutcomeMinor, "conflict", problem.New(problem.ErrPreconditionFailed, "conflict", "If-Match: Binary/"+id+" does not exist"))
		}
		return 1, nil
	case err != nil:
		return 0, store.Problem(err)
	}
	if ifMatch != nil && *ifMatch != v.Version {
		return 0, r.refuse(rec, audit.OutcomeMinor, "conflict", problem.New(problem.ErrPreconditionFailed, "conflict",
			fmt.Sprintf("If-Match: Binary/%s is at version %d", id, v.Version)))
	}
	if !v.Deleted {
		if _, err := r.decideBinary(ctx, authz.Update, rec, v); err != nil {
			return 0, err
		}
	}
	return v.Version + 1, nil
}

// storeContent seals up.Body into a new object for version.
func (r *Repo) storeContent(ctx context.Context, rec *audit.Record, up Upload, version int64) (BinaryMeta, error) {
	m := BinaryMeta{ContentType: up.ContentType, Creator: r.subj.ID, Security: up.SecurityContext}
	keyID, key, err := r.streamKey(ctx, up.SecurityContext)
	if err != nil {
		return m, err
	}
	m.KeyID = keyID
	var rnd [8]byte
	rand.Read(rnd[:])
	m.Object = objectKey(r.subj.Tenant, up.ID, version, hex.EncodeToString(rnd[:]))
	want := docseal.Expect{Size: up.Size, SHA1: up.SHA1, Max: r.s.content.MaxBytes}
	m.Segment = docseal.SegmentFor(up.Size)
	sealing, err := docseal.NewSealing(up.Body, key, docseal.AAD(r.subj.Tenant, up.ID, version), want, m.Segment)
	if err != nil {
		return m, err
	}
	defer sealing.Close()
	_, perr := r.s.content.Objects.Put(ctx, m.Object, sealing)
	sum, serr := sealing.Sum()
	switch {
	case errors.Is(serr, docseal.ErrMismatch):
		return m, r.refuse(rec, audit.OutcomeMinor, "hash-mismatch", problem.New(problem.ErrUnprocessable, "invalid",
			"the content does not match the declared size or SHA-1 hash; nothing was stored"))
	case errors.Is(serr, docseal.ErrTooLarge):
		return m, r.refuse(rec, audit.OutcomeMinor, "too-large", problem.New(problem.ErrTooLarge, "too-costly",
			fmt.Sprintf("the content is larger than the limit of %d bytes (WARD_BINARY_MAX_BYTES)", r.s.content.MaxBytes)))
	case serr != nil:
		return m, r.refuse(rec, audit.OutcomeMinor, "upload-failed", problem.New(problem.ErrInvalid, "incomplete", "the content could not be read to its end"))
	case perr != nil:
		return m, fmt.Errorf("%w: store content: %v", problem.ErrUnavailable, perr)
	}
	m.Size, m.SHA256, m.SHA1 = sum.Size, sum.SHA256[:], sum.SHA1[:]
	return m, nil
}

// streamKey returns the id of the data key that seals content under
// securityContext (sealKey: a patient's, or the tenant's) and the stream
// key derived from it.
func (r *Repo) streamKey(ctx context.Context, securityContext string) (string, []byte, error) {
	sk, ok := r.s.keys.(streamKeyer)
	if !ok {
		return "", nil, fmt.Errorf("%w: the keyring cannot seal content streams", problem.ErrUnavailable)
	}
	doc := map[string]any{"securityContext": map[string]any{"reference": securityContext}}
	keyID, err := r.s.sealKey(ctx, r.subj.Tenant, "Binary", "", doc)
	if err != nil {
		return "", nil, err
	}
	key, err := sk.StreamKey(keyID)
	return keyID, key, err
}

func (r *Repo) dropObject(key string) {
	if key != "" {
		r.s.content.Objects.Delete(context.Background(), key)
	}
}

// objectKey names the object of one version: tenant, id and version
// (what the sweeper checks against the store) and a random part, so a
// retried or racing upload never overwrites another's object.
func objectKey(tenant, id string, version int64, nonce string) string {
	return ObjectPrefix(tenant) + id + "/" + strconv.FormatInt(version, 10) + "-" + nonce
}

// ObjectPrefix is the prefix of every content object of a tenant.
func ObjectPrefix(tenant string) string {
	return "b/" + hex.EncodeToString([]byte(tenant)) + "/"
}

// parseObjectKey is objectKey's inverse.
func parseObjectKey(key string) (tenant, id string, version int64, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[0] != "b" {
		return "", "", 0, false
	}
	t, err := hex.DecodeString(parts[1])
	if err != nil {
		return "", "", 0, false
	}
	vs, _, _ := strings.Cut(parts[3], "-")
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || !fhir.IsID(parts[2]) {
		return "", "", 0, false
	}
	return string(t), parts[2], v, true
}

// binaryDoc is the stored Binary: content type, security context and
// the content extension (no data).
func binaryDoc(id string, m BinaryMeta) map[string]any {
	ext := []any{
		map[string]any{"url": "size", "valueDecimal": json.Number(strconv.FormatInt(m.Size, 10))},
		map[string]any{"url": "sha256", "valueBase64Binary": base64.StdEncoding.EncodeToString(m.SHA256)},
		map[string]any{"url": "sha1", "valueBase64Binary": base64.StdEncoding.EncodeToString(m.SHA1)},
		map[string]any{"url": "object", "valueString": m.Object},
		map[string]any{"url": "creator", "valueString": m.Creator},
		map[string]any{"url": "segment", "valueInteger": json.Number(strconv.Itoa(m.Segment))},
	}
	if m.KeyID != "" {
		ext = append(ext, map[string]any{"url": "key", "valueString": m.KeyID})
	}
	doc := map[string]any{"resourceType": "Binary", "id": id, "contentType": m.ContentType,
		"meta": map[string]any{"extension": []any{map[string]any{"url": ContentExtension, "extension": ext}}}}
	if m.Security != "" {
		doc["securityContext"] = map[string]any{"reference": m.Security}
	}
	return doc
}

// binaryMeta reads what binaryDoc wrote (or, for a Binary written as
// FHIR JSON, its inline data's size and creator-less metadata).
func binaryMeta(doc map[string]any) BinaryMeta {
	m := BinaryMeta{Segment: docseal.SegmentSize}
	m.ContentType, _ = doc["contentType"].(string)
	if sc, ok := doc["securityContext"].(map[string]any); ok {
		m.Security, _ = sc["reference"].(string)
	}
	meta, _ := doc["meta"].(map[string]any)
	exts, _ := meta["extension"].([]any)
	for _, e := range exts {
		em, _ := e.(map[string]any)
		if em["url"] != ContentExtension {
			continue
		}
		subs, _ := em["extension"].([]any)
		for _, s := range subs {
			sm, _ := s.(map[string]any)
			switch sm["url"] {
			case "size":
				n, _ := sm["valueDecimal"].(json.Number)
				m.Size, _ = strconv.ParseInt(string(n), 10, 64)
			case "sha256":
				m.SHA256, _ = base64.StdEncoding.DecodeString(str(sm["valueBase64Binary"]))
			case "sha1":
				m.SHA1, _ = base64.StdEncoding.DecodeString(str(sm["valueBase64Binary"]))
			case "object":
				m.Object = str(sm["valueString"])
			case "creator":
				m.Creator = str(sm["valueString"])
			case "key":
				m.KeyID = str(sm["valueString"])
			case "segment":
				n, _ := sm["valueInteger"].(json.Number)
				if v, err := strconv.Atoi(string(n)); err == nil {
					m.Segment = v
				}
			}
		}
	}
	if m.Object == "" {
		if d, ok := doc["data"].(string); ok {
			m.Size = int64(base64.StdEncoding.DecodedLen(len(d)))
			if raw, err := base64.StdEncoding.DecodeString(d); err == nil {
				m.Size = int64(len(raw))
			}
		}
	}
	return m
}

func str(v any) string { s, _ := v.(string); return s }
