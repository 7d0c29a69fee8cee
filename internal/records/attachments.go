package records

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// attachmentsOf returns the Attachments of a resource whose content Ward
// checks and may move to a Binary: DocumentReference.content.attachment
// and DiagnosticReport.presentedForm.
func attachmentsOf(res *fhir.Resource) (out []map[string]any, paths []string) {
	switch res.Type {
	case "DocumentReference":
		cs, _ := res.Doc["content"].([]any)
		for i, c := range cs {
			cm, _ := c.(map[string]any)
			if a, ok := cm["attachment"].(map[string]any); ok {
				out = append(out, a)
				paths = append(paths, fmt.Sprintf("DocumentReference.content[%d].attachment", i))
			}
		}
	case "DiagnosticReport":
		fs, _ := res.Doc["presentedForm"].([]any)
		for i, f := range fs {
			if a, ok := f.(map[string]any); ok {
				out = append(out, a)
				paths = append(paths, fmt.Sprintf("DiagnosticReport.presentedForm[%d]", i))
			}
		}
	}
	return out, paths
}

// attachments checks each Attachment's declared size and SHA-1 against
// its content (422, nothing stored, on a mismatch), fills them in when
// absent, and moves inline data larger than Content.AttachmentMax to a
// new Binary (security context: this resource) named by url. It runs
// after the write was decided and before anything is stored.
func (r *Repo) attachments(ctx context.Context, rec *audit.Record, res *fhir.Resource) error {
	moves, err := r.checkAttachments(ctx, rec, res, nil)
	if err != nil {
		return err
	}
	return r.moveAttachments(ctx, rec, res, moves)
}

// attachmentMove is inline attachment data to move to a Binary.
type attachmentMove struct {
	a    map[string]any
	data []byte
}

// checkAttachments is attachments' first half: check and fill in every
// Attachment of res, and say which data to move; nothing is stored.
// local are the Binaries a transaction writes beside res, by id: an
// Attachment naming one is checked against it, not the stored one.
func (r *Repo) checkAttachments(ctx context.Context, rec *audit.Record, res *fhir.Resource, local map[string]*fhir.Resource) ([]attachmentMove, error) {
	atts, paths := attachmentsOf(res)
	var moves []attachmentMove
	for i, a := range atts {
		size, sum, data, err := r.attachmentContent(ctx, rec, a, paths[i], local)
		if err != nil {
			return nil, err
		}
		if size < 0 {
			continue // not content Ward holds
		}
		if err := checkDeclared(a, size, sum, paths[i]); err != nil {
			return nil, r.refuse(rec, audit.OutcomeMinor, "hash-mismatch", err)
		}
		a["size"] = json.Number(strconv.FormatInt(size, 10))
		a["hash"] = base64.StdEncoding.EncodeToString(sum)
		if data != nil && r.s.ContentEnabled() && r.s.content.AttachmentMax >= 0 && int64(len(data)) > r.s.content.AttachmentMax {
			moves = append(moves, attachmentMove{a, data})
		}
	}
	return moves, nil
}

// moveAttachments is attachments' second half: each move's data becomes
// a Binary the attachment's url names.
func (r *Repo) moveAttachments(ctx context.Context, rec *audit.Record, res *fhir.Resource, moves []attachmentMove) error {
	for _, m := range moves {
		id, err := r.moveToBinary(ctx, rec, res, m.a, m.data)
		if err != nil {
			return err
		}
		delete(m.a, "data")
		m.a["url"] = "Binary/" + id
	}
	return nil
}

// transactionAttachments is attachments for the writes of a transaction:
// every entry's Attachments are checked first (a mismatch fails the
// entry, and so the transaction, before any content is stored), then
// the large inline data of all of them is stored as the content of new
// Binaries. The Binaries are not committed here: the caller stages them
// into the transaction's own unit, so a commit that fails (or is retried)
// leaves no Binary behind, only objects that it drops or the sweeper
// removes.
func (r *Repo) transactionAttachments(ctx context.Context, order []*Entry, skip func(*Entry) bool) ([]*movedBinary, error) {
	type pending struct {
		e     *Entry
		rec   *audit.Record
		moves []attachmentMove
	}
	var all []pending
	local := map[string]*fhir.Resource{}
	for _, e := range order {
		if e.Type != "Binary" || e.Resource == nil || (e.Method != http.MethodPost && e.Method != http.MethodPut) {
			continue
		}
		id := e.ID
		if id == "" {
			id = str(e.Resource.Doc["id"])
		}
		if id != "" {
			local[id] = e.Resource
		}
	}
	for _, e := range order {
		if e.Resource == nil || e.Method == http.MethodDelete || skip(e) {
			continue
		}
		rec := r.record(entryAuditAction(e.Method), e.Type)
		moves, err := r.checkAttachments(ctx, rec, e.Resource, local)
		if err != nil {
			return nil, entryError(e, err)
		}
		if len(moves) > 0 {
			all = append(all, pending{e, rec, moves})
		}
	}
	var moved []*movedBinary
	for _, p := range all {
		for _, m := range p.moves {
			b, err := r.prepareBinary(ctx, p.rec, p.e.Resource, m.a, m.data)
			if err != nil {
				r.dropMoved(moved)
				return nil, entryError(p.e, err)
			}
			moved = append(moved, b)
			delete(m.a, "data")
			m.a["url"] = "Binary/" + b.bin.ID
		}
	}
	return moved, nil
}

// movedBinary is inline Attachment data stored as the content object of
// a new Binary whose version is not committed yet.
type movedBinary struct {
	rec    *audit.Record
	bin    *fhir.Resource
	object string
}

// dropMoved removes the objects of moved Binaries whose unit is known
// not to have committed (the sweeper removes any it misses).
func (r *Repo) dropMoved(moved []*movedBinary) {
	for _, m := range moved {
		r.dropObject(m.object)
	}
}

// attachmentContent returns the size and SHA-1 of an Attachment's
// content: its inline data, or the Binary its url names (size -1: an
// external url, not checked).
func (r *Repo) attachmentContent(ctx context.Context, rec *audit.Record, a map[string]any, path string, local map[string]*fhir.Resource) (int64, []byte, []byte, error) {
	if d, ok := a["data"].(string); ok {
		data, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			return 0, nil, nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrInvalid, "invalid", path+".data", "not base64"))
		}
		s := sha1.Sum(data)
		return int64(len(data)), s[:], data, nil
	}
	u, _ := a["url"].(string)
	id, ok := strings.CutPrefix(u, "Binary/")
	if !ok || !fhir.IsID(id) {
		return -1, nil, nil, nil
	}
	if bin, ok := local[id]; ok {
		// Written by the same transaction: its inline data is the content
		// (its access is decided as that entry's write).
		raw, err := base64.StdEncoding.DecodeString(str(bin.Doc["data"]))
		if err != nil {
			return 0, nil, nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrInvalid, "invalid", path+".url", "the Binary it names has data that is not base64"))
		}
		s := sha1.Sum(raw)
		return int64(len(raw)), s[:], nil, nil
	}
	v, err := r.s.st.Current(ctx, r.subj.Tenant, "Binary", id)
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted:
		return 0, nil, nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrUnprocessable, "not-found", path+".url", "the Binary it names does not exist"))
	case err != nil:
		return 0, nil, nil, store.Problem(err)
	}
	bin, err := r.decideBinary(ctx, authz.Read, rec, v)
	if err != nil {
		return 0, nil, nil, err
	}
	m := binaryMeta(bin.Doc)
	if m.Object == "" {
		raw, _ := base64.StdEncoding.DecodeString(str(bin.Doc["data"]))
		s := sha1.Sum(raw)
		return int64(len(raw)), s[:], nil, nil
	}
	return m.Size, m.SHA1, nil, nil
}

// checkDeclared compares an Attachment's size and hash, when given, with
// the content's.
func checkDeclared(a map[string]any, size int64, sum []byte, path string) error {
	if s, ok := a["size"]; ok {
		n, _ := s.(json.Number)
		if d, err := strconv.ParseInt(string(n), 10, 64); err != nil || d != size {
			return problem.At(problem.ErrUnprocessable, "invalid", path+".size", "the size does not match the content; nothing was stored")
		}
	}
	if h, ok := a["hash"].(string); ok {
		d, err := base64.StdEncoding.DecodeString(h)
		if err != nil || !bytes.Equal(d, sum) {
			return problem.At(problem.ErrUnprocessable, "invalid", path+".hash", "the SHA-1 hash does not match the content; nothing was stored")
		}
	}
	return nil
}

// moveToBinary stores inline attachment data as a new Binary whose
// security context is res, committed (with its own ledger record) before
// res is.
func (r *Repo) moveToBinary(ctx context.Context, parent *audit.Record, res *fhir.Resource, a map[string]any, data []byte) (string, error) {
	b, err := r.prepareBinary(ctx, parent, res, a, data)
	if err != nil {
		return "", err
	}
	now := r.s.now().UTC()
	_, sealed, ix, err := r.seal(ctx, b.bin, 1, now)
	if err == nil {
		w := store.Write{Tenant: r.subj.Tenant, Type: "Binary", ID: b.bin.ID, Version: 1, LastUpdated: now, Body: sealed, Index: ix}
		err = r.commitWrite(ctx, w, b.rec, nil, b.bin.Doc)
	}
	if err != nil {
		r.dropObject(b.object)
		return "", err
	}
	return b.bin.ID, nil
}

// prepareBinary stores inline attachment data as the content object of a
// new Binary whose security context is res, and returns that Binary and
// its ledger record, uncommitted.
func (r *Repo) prepareBinary(ctx context.Context, parent *audit.Record, res *fhir.Resource, a map[string]any, data []byte) (*movedBinary, error) {
	rec := r.record("create", "Binary")
	rec.Purpose = parent.Purpose
	id := r.s.newID()
	up := Upload{ID: id, ContentType: str(a["contentType"]), SecurityContext: res.Type + "/" + res.ID, Body: bytes.NewReader(data), Size: int64(len(data))}
	if up.ContentType == "" {
		up.ContentType = "application/octet-stream"
	}
	m, err := r.storeContent(ctx, rec, up, 1)
	if err != nil {
		return nil, err
	}
	rec.Detail = "bytes=" + strconv.FormatInt(m.Size, 10)
	return &movedBinary{rec: rec, bin: &fhir.Resource{Type: "Binary", ID: id, Doc: binaryDoc(id, m)}, object: m.Object}, nil
}
