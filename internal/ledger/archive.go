package ledger

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
)

// An archive file holds records moved out of the live ledger, in one
// format fixed forever (version 1):
//
//	ward-audit-archive/1
//	<base64 of the canonical encoding of each record, one a line, in seq order>
//	{"summary": "<signed note>", "checkpoint": "<signed note>"}
//
// The summary is a signed note (the checkpoint key) whose text is
//
//	ward-audit-archive/1
//	<origin>
//	first <seq>
//	last <seq>
//	prev <base64 PrevHash of the first record>
//	head <base64 Hash of the last record>
//	records <base64 SHA-256 of the record lines, newlines included>
//
// and the checkpoint is the signed checkpoint of the tree at size last:
// the tree root over every record from 1 to last, so that the archive is
// checked against the proof, not only against itself. A record line holds
// the exact bytes that were hashed, so no field can be lost to an encoding.
const archiveHeader = "ward-audit-archive/1"

// ErrArchive is wrapped by every error about an archive's form, signature
// or contents.
var ErrArchive = errors.New("ledger: bad archive")

// ArchiveInfo is what an archive's signed summary says.
type ArchiveInfo struct {
	First, Last int64
	Prev, Head  [32]byte
	Checkpoint  Checkpoint
}

// WriteArchive writes the records (contiguous, chained, in seq order) with
// the signed checkpoint at the last one, and the summary signed by signer.
func WriteArchive(w io.Writer, signer note.Signer, checkpoint []byte, recs iter.Seq2[*audit.Record, error]) (ArchiveInfo, error) {
	var info ArchiveInfo
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(archiveHeader + "\n"); err != nil {
		return info, err
	}
	sum := sha256.New()
	out := io.MultiWriter(bw, sum)
	var buf, line []byte
	n := 0
	for r, err := range recs {
		if err != nil {
			return info, err
		}
		if n == 0 {
			info.First, info.Prev = r.Seq, r.PrevHash
		} else if r.Seq != info.Last+1 {
			return info, fmt.Errorf("%w: record %d follows %d", ErrArchive, r.Seq, info.Last)
		}
		info.Last, info.Head = r.Seq, r.Hash
		n++
		buf = r.AppendCanonical(buf[:0])
		line = base64.StdEncoding.AppendEncode(line[:0], buf)
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return info, err
		}
	}
	if n == 0 {
		return info, fmt.Errorf("%w: no records to archive", ErrArchive)
	}
	text := archiveHeader + "\n" + signer.Name() + "\nfirst " + strconv.FormatInt(info.First, 10) +
		"\nlast " + strconv.FormatInt(info.Last, 10) +
		"\nprev " + base64.StdEncoding.EncodeToString(info.Prev[:]) +
		"\nhead " + base64.StdEncoding.EncodeToString(info.Head[:]) +
		"\nrecords " + base64.StdEncoding.EncodeToString(sum.Sum(nil)) + "\n"
	signed, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return info, fmt.Errorf("sign archive: %w", err)
	}
	tail, err := json.Marshal(archiveTail{Summary: string(signed), Checkpoint: string(checkpoint)})
	if err != nil {
		return info, err
	}
	if _, err := bw.Write(append(tail, '\n')); err != nil {
		return info, err
	}
	return info, bw.Flush()
}

type archiveTail struct {
	Summary    string `json:"summary"`
	Checkpoint string `json:"checkpoint"`
}

// ReadArchive reads an archive, handing each record to fn in order (without
// PrevHash and Hash: the caller chains them from the previous archive's
// head and compares the result with ArchiveInfo.Head), and then checks the
// signed summary and checkpoint with keys: the record lines must hash to
// the signed digest, run from first to last and end at the signed head,
// and the checkpoint must be at size last. fn sees records before the
// signatures are checked: a caller must treat nothing as verified until
// ReadArchive returns nil.
func ReadArchive(r io.Reader, keys note.Verifiers, fn func(*audit.Record) error) (ArchiveInfo, error) {
	var info ArchiveInfo
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.ReadString('\n')
	if err != nil || first != archiveHeader+"\n" {
		return info, fmt.Errorf("%w: not a Ward audit archive (version 1)", ErrArchive)
	}
	sum := sha256.New()
	var seq int64
	n := 0
	var tail []byte
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return info, fmt.Errorf("%w: the archive ends before its signed summary", ErrArchive)
		}
		if err != nil && err != io.EOF {
			return info, fmt.Errorf("read archive: %w", err)
		}
		if len(line) > 0 && line[0] == '{' {
			tail = line
			if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
				return info, fmt.Errorf("%w: data after the signed summary", ErrArchive)
			}
			break
		}
		if err == io.EOF {
			return info, fmt.Errorf("%w: the archive ends before its signed summary", ErrArchive)
		}
		sum.Write(line)
		raw, derr := base64.StdEncoding.Strict().DecodeString(string(bytes.TrimSuffix(line, []byte("\n"))))
		if derr != nil {
			return info, fmt.Errorf("%w: record line %d is not base64", ErrArchive, n+1)
		}
		rec, derr := ParseCanonical(raw)
		if derr != nil {
			return info, fmt.Errorf("%w: record line %d: %v", ErrArchive, n+1, derr)
		}
		if n == 0 {
			seq = rec.Seq
		} else if rec.Seq != seq+1 {
			return info, fmt.Errorf("%w: record %d follows %d", ErrArchive, rec.Seq, seq)
		}
		seq = rec.Seq
		n++
		if fn != nil {
			if err := fn(rec); err != nil {
				return info, err
			}
		}
	}
	var t archiveTail
	if err := json.Unmarshal(tail, &t); err != nil {
		return info, fmt.Errorf("%w: the signed summary line does not parse", ErrArchive)
	}
	sn, err := note.Open([]byte(t.Summary), keys)
	if err != nil {
		return info, fmt.Errorf("%w: summary signature: %v", ErrArchive, err)
	}
	info, digest, err := parseSummary(sn.Text)
	if err != nil {
		return info, err
	}
	if !bytes.Equal(digest, sum.Sum(nil)) {
		return info, fmt.Errorf("%w: the records do not match the signed digest", ErrArchive)
	}
	if n == 0 || info.Last-info.First+1 != int64(n) || seq != info.Last {
		return info, fmt.Errorf("%w: the archive holds %d records, its summary says %d to %d", ErrArchive, n, info.First, info.Last)
	}
	cp, err := Open([]byte(t.Checkpoint), keys)
	if err != nil {
		return info, fmt.Errorf("%w: boundary checkpoint: %v", ErrArchive, err)
	}
	if cp.Size != uint64(info.Last) {
		return info, fmt.Errorf("%w: the boundary checkpoint is at size %d, the archive ends at %d", ErrArchive, cp.Size, info.Last)
	}
	info.Checkpoint = cp
	return info, nil
}

func parseSummary(text string) (ArchiveInfo, []byte, error) {
	var info ArchiveInfo
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	bad := fmt.Errorf("%w: the signed summary is malformed", ErrArchive)
	if len(lines) != 7 || lines[0] != archiveHeader {
		return info, nil, bad
	}
	field := func(i int, name string) (string, bool) { return strings.CutPrefix(lines[i], name+" ") }
	f, ok1 := field(2, "first")
	l, ok2 := field(3, "last")
	p, ok3 := field(4, "prev")
	h, ok4 := field(5, "head")
	d, ok5 := field(6, "records")
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return info, nil, bad
	}
	var err1, err2 error
	info.First, err1 = strconv.ParseInt(f, 10, 64)
	info.Last, err2 = strconv.ParseInt(l, 10, 64)
	pb, err3 := base64.StdEncoding.Strict().DecodeString(p)
	hb, err4 := base64.StdEncoding.Strict().DecodeString(h)
	db, err5 := base64.StdEncoding.Strict().DecodeString(d)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || len(pb) != 32 || len(hb) != 32 || len(db) != 32 || info.First < 1 || info.Last < info.First {
		return info, nil, bad
	}
	copy(info.Prev[:], pb)
	copy(info.Head[:], hb)
	return info, db, nil
}

// ParseCanonical decodes the canonical encoding (versions 1 and 2, see
// audit.Record.AppendCanonical) back into a record without PrevHash and
// Hash. It accepts exactly the encodings AppendCanonical produces.
func ParseCanonical(b []byte) (*audit.Record, error) {
	d := decoder{b: b}
	version := d.byte()
	if version != audit.CanonicalVersion && version != audit.CanonicalVersionPatients {
		return nil, errors.New("unknown canonical version")
	}
	r := &audit.Record{}
	r.Seq = int64(d.u64())
	r.Time = time.UnixMicro(int64(d.u64())).UTC()
	r.Tenant = d.str()
	r.RequestID = d.str()
	r.Actor = d.str()
	r.Role = d.str()
	r.Action = d.str()
	r.ResourceType = d.str()
	n := d.u32()
	if uint64(n) > uint64(len(d.b))/4 {
		return nil, errors.New("entity count beyond the record")
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		r.Entities = append(r.Entities, d.str())
	}
	r.Outcome = audit.Outcome(int64(d.u64()))
	r.Detail = d.str()
	switch d.byte() {
	case 0:
	case 1:
		r.Emergency = true
	default:
		d.fail()
	}
	r.Purpose = d.str()
	if version == audit.CanonicalVersionPatients {
		n := d.u32()
		if uint64(n) > uint64(len(d.b))/4 {
			return nil, errors.New("patient count beyond the record")
		}
		for i := uint32(0); i < n && d.err == nil; i++ {
			r.Patients = append(r.Patients, d.str())
		}
		r.Address = d.str()
		if d.err == nil && len(r.Patients) == 0 && r.Address == "" {
			return nil, errors.New("a version 2 record without patients or address")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, errors.New("bytes after the record")
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("truncated or malformed record")
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail()
		return make([]byte, max(n, 0))
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte  { return d.take(1)[0] }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *decoder) str() string {
	n := d.u32()
	if uint64(n) > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	return string(d.take(int(n)))
}
