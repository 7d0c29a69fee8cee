package records

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadLine: the NDJSON line reader of ImportNDJSON returns exactly the
// newline-separated lines of its input (a final line without newline
// included, nothing after the last newline invented), whatever the bytes
// and however lines straddle the reader's buffer.
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{
		"{\"resourceType\":\"Patient\"}\n{\"resourceType\":\"Observation\"}\n", // two lines
		"no newline at the end", // final line without newline
		"\n\n\r\n",              // empty lines and CRLF
		"a\x00b\nc\xff\n",       // NUL and invalid UTF-8
		string(bytes.Repeat([]byte("x"), 40)) + "\n" + "y", // longer than the fuzz buffer
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// A 16-byte buffer makes lines straddle it (ErrBufferFull path).
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var got [][]byte
		for {
			line, err := readLine(br)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("readLine: %v", err)
			}
			got = append(got, bytes.TrimSuffix(line, []byte("\n")))
		}
		want := bytes.Split(in, []byte("\n"))
		if len(want) > 0 && len(want[len(want)-1]) == 0 {
			want = want[:len(want)-1]
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}
