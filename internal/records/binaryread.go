package records

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/docseal"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// decideSecurity decides a Binary's access: with a security context, as
// a read of the resource it names (its patients, consent and labels
// included); without one, the creator and admins (unless admins are
// kept out of patient data). creator "" is a new Binary: the caller
// becomes its creator.
func (r *Repo) decideSecurity(ctx context.Context, rec *audit.Record, security, creator string) error {
	if security == "" {
		if creator == "" || creator == r.subj.ID || r.subj.Role == authz.RoleAdmin && !r.s.noAdminPHI {
			return nil
		}
		return r.refuse(rec, audit.OutcomeMinor, "denied:not-creator", problem.New(problem.ErrForbidden, "forbidden", "access denied by policy"))
	}
	typ, id, ok := strings.Cut(security, "/")
	if !ok || !fhir.IsResourceType(typ) || !fhir.IsID(id) || typ == "Binary" {
		return r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrInvalid, "invalid", "Binary.securityContext",
			"the security context must be a reference Type/id to a resource other than a Binary"))
	}
	v, err := r.s.st.Current(ctx, r.subj.Tenant, typ, id)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted:
		// Like any refusal: whether it exists is not disclosed.
		return r.hidden(rec, "security-context")
	case err != nil:
		return store.Problem(err)
	}
	_, err = r.decideVersion(ctx, authz.Read, rec, v)
	return err
}

// decideBinary opens a stored Binary version and decides a on it.
func (r *Repo) decideBinary(ctx context.Context, a authz.Action, rec *audit.Record, v *store.Version) (*fhir.Resource, error) {
	plain, err := r.open(ctx, v)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("stored Binary/%s does not parse: %w", v.ID, err)
	}
	m := binaryMeta(res.Doc)
	if m.Object == "" && m.Security == "" && m.Creator == "" {
		// A Binary written as FHIR JSON before content streaming: decided
		// as every other resource.
		_, err := r.decideVersion(ctx, a, rec, v)
		return res, err
	}
	if err := r.decideSecurity(ctx, rec, m.Security, m.Creator); err != nil {
		return nil, err
	}
	return res, nil
}

// Range picks the bytes to send once the size is known: it returns the
// offset and length, or an error (unsatisfiable) to refuse.
type Range func(size int64) (off, n int64, err error)

// BinaryRead is an opened Binary version: its resource, what Ward keeps
// about its content, and the content itself (the range asked for).
type BinaryRead struct {
	Resource
	Meta BinaryMeta
	// Off and N are the range of the content Body yields.
	Off, N int64
	// Body yields the content; it fails, at the first segment that does
	// not authenticate, with an error wrapping docseal.ErrCorrupt. Nil
	// when only the resource was asked for.
	Body io.ReadCloser
}

// ReadBinary reads Binary id (version 0: the current one). With rng nil
// it returns the resource for FHIR JSON (with data when the content is
// at most Content.InlineMax bytes); else it returns the content's range,
// and the ledger record says how many bytes are disclosed, before any is.
func (r *Repo) ReadBinary(ctx context.Context, id string, version int64, rng Range) (*BinaryRead, error) {
	action := "read"
	if version != 0 {
		action = "vread"
	}
	rec := r.record(action, "Binary")
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	if rng != nil {
		// A download waits for its stream slot before it loads anything:
		// while it waits it holds its request, not the resource, its
		// facts or any buffer, so a thousand waiting downloads cost a
		// thousand requests, no more (BenchmarkBinaryConcurrent100KiB).
		release, err := r.s.content.stream(ctx)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeMinor, "busy", err)
		}
		out, err := r.readContent(ctx, rec, action, id, version, rng, release)
		if out == nil || out.Body == nil {
			release()
		}
		return out, err
	}
	out, v, res, err := r.binaryVersion(ctx, rec, action, id, version)
	if res == nil {
		return out, err
	}
	return r.binaryResource(ctx, rec, v, res, out)
}

// binaryVersion finds, opens and decides the Binary version a read
// names: its BinaryRead (resource and meta), version and parsed body.
// A deleted one is answered (audited) as any deletion: its BinaryRead
// (or nil) and error, with a nil body.
func (r *Repo) binaryVersion(ctx context.Context, rec *audit.Record, action, id string, version int64) (*BinaryRead, *store.Version, *fhir.Resource, error) {
	v, err := r.instance(ctx, rec, "Binary", id, version)
	if err != nil {
		return nil, nil, nil, err
	}
	rec.Entities = []string{ref("Binary", id, v.Version)}
	if v.Deleted {
		out, err := r.read(ctx, action, "Binary", id, v.Version) // audits and answers as for any deletion
		if out != nil {
			return &BinaryRead{Resource: *out}, v, nil, err
		}
		return nil, v, nil, err
	}
	res, err := r.decideBinary(ctx, authz.Read, rec, v)
	if err != nil {
		return nil, v, nil, err
	}
	out := &BinaryRead{Resource: Resource{Type: "Binary", ID: id, Version: v.Version, LastUpdated: v.LastUpdated}, Meta: binaryMeta(res.Doc)}
	return out, v, res, nil
}

// readContent is ReadBinary of the content's range, its stream slot
// taken (release gives it back; the body returned keeps it until
// closed).
func (r *Repo) readContent(ctx context.Context, rec *audit.Record, action, id string, version int64, rng Range, release func()) (*BinaryRead, error) {
	out, v, res, err := r.binaryVersion(ctx, rec, action, id, version)
	if res == nil {
		return out, err
	}
	m := out.Meta
	off, n, err := rng(m.Size)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeMinor, "range", err)
	}
	out.Off, out.N = off, n
	src, err := r.contentSource(ctx, v, res.Doc, m)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "content-unavailable", err)
	}
	rec.Detail = "bytes=" + strconv.FormatInt(n, 10)
	if err := r.commitAudit(rec); err != nil {
		src.Close()
		return nil, err
	}
	// Only now, the ledger record durable, are the segment buffers
	// allocated (and the header read): a download waiting for the group
	// commit holds an open object, not its buffers.
	body, err := src.open(off)
	if err != nil {
		// The read is in the ledger already (which may overstate a
		// disclosure, never understate one); this says it failed.
		again := r.record(rec.Action, "Binary")
		again.Entities, again.Purpose = rec.Entities, rec.Purpose
		return nil, r.refuse(again, audit.OutcomeSerious, "content-unavailable", err)
	}
	out.Body = &limitedBody{r: io.LimitReader(body, n), c: body, onCorrupt: r.corrupt(v), release: release, bufs: copyBufsFor(src.seg)}
	return out, nil
}

// binaryResource answers a FHIR read of a Binary: the resource, with
// data when the content is small enough to inline.
func (r *Repo) binaryResource(ctx context.Context, rec *audit.Record, v *store.Version, res *fhir.Resource, out *BinaryRead) (*BinaryRead, error) {
	m := out.Meta
	if m.Object != "" && m.Size <= r.s.content.InlineMax {
		release, err := r.s.content.stream(ctx)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeMinor, "busy", err)
		}
		body, err := r.openContent(ctx, v, res.Doc, m)
		if err != nil {
			release()
			return nil, r.refuse(rec, audit.OutcomeSerious, "content-unavailable", err)
		}
		data, err := io.ReadAll(io.LimitReader(body, r.s.content.InlineMax+1))
		body.Close()
		release()
		if err != nil {
			r.corrupt(v)()
			return nil, r.refuse(rec, audit.OutcomeSerious, "corrupt", fmt.Errorf("%w: Binary/%s content failed its integrity check", problem.ErrUnavailable, v.ID))
		}
		res.Doc["data"] = base64.StdEncoding.EncodeToString(data)
		rec.Detail = "bytes=" + strconv.Itoa(len(data))
	}
	fhir.SetMeta(res.Doc, strconv.FormatInt(v.Version, 10), v.LastUpdated)
	js, err := fhir.Marshal(res.Doc)
	if err != nil {
		return nil, err
	}
	if err := r.commitAudit(rec); err != nil {
		return nil, err
	}
	out.JSON = js
	return out, nil
}

// openContent opens the plaintext of a version's content.
func (r *Repo) openContent(ctx context.Context, v *store.Version, doc map[string]any, m BinaryMeta) (io.ReadCloser, error) {
	src, err := r.contentSource(ctx, v, doc, m)
	if err != nil {
		return nil, err
	}
	return src.open(0)
}

// contentSource is a version's content, its object open but not yet
// read: open allocates the decryption's buffers and reads the header.
type contentSource struct {
	r      *Repo
	v      *store.Version
	inline []byte        // content kept as data in the resource
	obj    io.ReadCloser // else the sealed object
	key    []byte
	seg    int
}

// contentSource resolves a version's content: its stream key and its
// object, opened (a file handle or a GET), nothing read.
func (r *Repo) contentSource(ctx context.Context, v *store.Version, doc map[string]any, m BinaryMeta) (*contentSource, error) {
	if m.Object == "" {
		raw, err := base64.StdEncoding.DecodeString(str(doc["data"]))
		if err != nil {
			return nil, fmt.Errorf("%w: Binary/%s data is not base64", problem.ErrInvalid, v.ID)
		}
		return &contentSource{inline: raw}, nil
	}
	if r.s.content.Objects == nil {
		return nil, fmt.Errorf("%w: content storage is not configured", problem.ErrUnavailable)
	}
	sk, ok := r.s.keys.(streamKeyer)
	if !ok {
		return nil, fmt.Errorf("%w: the keyring cannot open content streams", problem.ErrUnavailable)
	}
	keyID := m.KeyID
	if keyID == "" {
		// Sealed before the key was recorded: under the only data key
		// the tenant then had.
		var err error
		if keyID, err = r.s.keys.DataKey(ctx, v.Tenant); err != nil {
			return nil, fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
		}
	}
	key, err := sk.StreamKey(keyID)
	if err != nil {
		return nil, fmt.Errorf("%w: stream key: %v", problem.ErrUnavailable, err)
	}
	obj, err := r.s.content.Objects.Open(ctx, m.Object, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: content object: %v", problem.ErrUnavailable, err)
	}
	return &contentSource{r: r, v: v, obj: obj, key: key, seg: m.Segment}, nil
}

// open returns the plaintext from off; it closes the object on failure.
func (c *contentSource) open(off int64) (io.ReadCloser, error) {
	if c.obj == nil {
		return io.NopCloser(bytes.NewReader(c.inline[min(off, int64(len(c.inline))):])), nil
	}
	pr, err := docseal.Open(c.obj, c.key, docseal.AAD(c.v.Tenant, c.v.ID, c.v.Version), off, c.seg)
	if err != nil {
		c.obj.Close()
		if errors.Is(err, docseal.ErrCorrupt) {
			c.r.corrupt(c.v)()
		}
		return nil, fmt.Errorf("%w: Binary/%s content failed its integrity check", problem.ErrUnavailable, c.v.ID)
	}
	return struct {
		io.Reader
		io.Closer
	}{pr, c.obj}, nil
}

// Close closes the object of a source that is not opened.
func (c *contentSource) Close() {
	if c.obj != nil {
		c.obj.Close()
	}
}

// corrupt returns the once-only report of a content that failed its
// integrity check: a ledger record (serious outcome, ids only) and
// Content.OnCorrupt for logs and metrics.
func (r *Repo) corrupt(v *store.Version) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			rec := r.record("binary-integrity", "Binary")
			rec.Entities = []string{ref("Binary", v.ID, v.Version)}
			rec.Outcome = audit.OutcomeSerious
			rec.Detail = "corrupt"
			r.commitAudit(rec)
			if f := r.s.content.OnCorrupt; f != nil {
				f(v.Tenant, ref("Binary", v.ID, v.Version))
			}
		})
	}
}

type limitedBody struct {
	r         io.Reader
	c         io.Closer
	onCorrupt func()
	// release gives back the content stream slot.
	release func()
	// bufs is the pool WriteTo copies through.
	bufs *sync.Pool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, docseal.ErrCorrupt) {
		b.onCorrupt()
	}
	return n, err
}

// WriteTo copies the content to w through one pooled buffer the size of
// a segment's plaintext: io.Copy (and net/http's ReadFrom) prefer it to
// Read, so a download in flight holds the decrypter's two segment
// buffers and this one, instead of also a 32 KiB copy buffer of
// net/http's pool and a fresh 32 KiB one of io.Copy's (the TCP
// connection's ReadFrom), which measured as memory growing with the
// number of concurrent downloads (BenchmarkBinaryConcurrent100KiB).
// What is written is what Read returned: authenticated plaintext only.
func (b *limitedBody) WriteTo(w io.Writer) (int64, error) {
	bp := b.bufs.Get().(*[]byte)
	defer b.bufs.Put(bp)
	var n int64
	for {
		k, err := b.Read(*bp)
		if k > 0 {
			m, werr := w.Write((*bp)[:k])
			n += int64(m)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// smallCopyBufs and largeCopyBufs are limitedBody.WriteTo's buffers:
// one small segment's plaintext (a Read of the decrypter returns at most
// one segment; also for content kept inline), and 64 KiB for 1 MiB
// segments, where fewer, larger
// writes keep a large download fast.
var (
	smallCopyBufs = sync.Pool{New: func() any { b := make([]byte, docseal.SmallSegmentSize); return &b }}
	largeCopyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
)

func copyBufsFor(segment int) *sync.Pool {
	if segment == docseal.SegmentSize {
		return &largeCopyBufs
	}
	return &smallCopyBufs
}

func (b *limitedBody) Close() error {
	err := b.c.Close()
	b.release()
	return err
}

// binaryRule is how a Binary version's access is decided: by its
// security context, by its creator, or (a Binary written as FHIR JSON
// before content streaming, with neither) as every other resource.
func binaryRule(doc map[string]any) (m BinaryMeta, generic bool) {
	m = binaryMeta(doc)
	return m, m.Object == "" && m.Security == "" && m.Creator == ""
}

// readable decides, without recording a refusal, whether the caller may
// read a stored version whose body is doc: what searches and history
// leave out. A Binary follows decideSecurity's rule (its security
// context's decision, or its creator and admins); every other resource
// the generic decision.
func (r *Repo) readable(ctx context.Context, rec *audit.Record, typ, id string, doc map[string]any) bool {
	if typ == "Binary" {
		if m, generic := binaryRule(doc); !generic {
			return r.securityAllows(ctx, rec, m.Security, m.Creator)
		}
	}
	return r.allowed(ctx, authz.Read, targetOf(r.subj.Tenant, typ, id, doc), rec)
}

// securityAllows is decideSecurity as a yes/no (an existing Binary:
// creator is never "").
func (r *Repo) securityAllows(ctx context.Context, rec *audit.Record, security, creator string) bool {
	if security == "" {
		return creator != "" && creator == r.subj.ID || r.subj.Role == authz.RoleAdmin && !r.s.noAdminPHI
	}
	typ, id, ok := strings.Cut(security, "/")
	if !ok || !fhir.IsResourceType(typ) || !fhir.IsID(id) || typ == "Binary" {
		return false
	}
	v, err := r.s.st.Current(ctx, r.subj.Tenant, typ, id)
	if err != nil || v.Deleted {
		return false
	}
	plain, err := r.open(ctx, v)
	if err != nil {
		return false
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return false
	}
	return r.allowed(ctx, authz.Read, targetOf(r.subj.Tenant, typ, id, res.Doc), rec)
}

// decideRead is the strict read decision on a stored version whose body
// is doc (a refusal is recorded and returned): decideSecurity for a
// Binary, the generic decision for the rest.
func (r *Repo) decideRead(ctx context.Context, rec *audit.Record, typ, id string, doc map[string]any) error {
	if typ == "Binary" {
		if m, generic := binaryRule(doc); !generic {
			return r.decideSecurity(ctx, rec, m.Security, m.Creator)
		}
	}
	return r.decideOn(ctx, authz.Read, rec, targetOf(r.subj.Tenant, typ, id, doc))
}
