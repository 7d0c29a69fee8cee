package fhirpath

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF     tokKind = iota
	tIdent           // name or `delimited name`; keywords are idents too
	tString          // 'text', value unescaped
	tNumber          // 123 or 1.5
	tEnv             // %name, value without the %
	tSpecial         // $this, $index, $total, value without the $
	tDate            // @... (recognised only to reject it precisely)
	tPunct           // . ( ) [ ] { } , | = != ~ !~ < > <= >= + - * / &
)

type token struct {
	kind tokKind
	pos  int    // byte offset of the first character
	text string // the unescaped value for idents and strings, else the source text
}

func (t token) is(p string) bool { return t.kind == tPunct && t.text == p }

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string literal"
	case tNumber:
		return "number " + t.text
	case tEnv:
		return "%" + t.text
	case tSpecial:
		return "$" + t.text
	case tIdent:
		return strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

// lex splits expr into tokens; it fails on the first character that cannot
// start a token and on unterminated strings and comments.
func lex(expr string) ([]token, error) {
	var toks []token
	i := 0
	for {
		// Whitespace and comments.
		for i < len(expr) {
			c := expr[i]
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				i++
				continue
			}
			if strings.HasPrefix(expr[i:], "//") {
				j := strings.IndexByte(expr[i:], '\n')
				if j < 0 {
					i = len(expr)
				} else {
					i += j + 1
				}
				continue
			}
			if strings.HasPrefix(expr[i:], "/*") {
				j := strings.Index(expr[i+2:], "*/")
				if j < 0 {
					return nil, errAt(expr, i, "unterminated comment")
				}
				i += 2 + j + 2
				continue
			}
			break
		}
		if i >= len(expr) {
			return append(toks, token{kind: tEOF, pos: i}), nil
		}
		start := i
		c := expr[i]
		switch {
		case isIdentStart(c):
			for i < len(expr) && isIdentPart(expr[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, pos: start, text: expr[start:i]})
		case c >= '0' && c <= '9':
			for i < len(expr) && isDigit(expr[i]) {
				i++
			}
			if i+1 < len(expr) && expr[i] == '.' && isDigit(expr[i+1]) {
				i++
				for i < len(expr) && isDigit(expr[i]) {
					i++
				}
			}
			toks = append(toks, token{kind: tNumber, pos: start, text: expr[start:i]})
		case c == '\'' || c == '`':
			s, n, err := unquote(expr, i)
			if err != nil {
				return nil, err
			}
			i = n
			k := tString
			if c == '`' {
				k = tIdent
				if s == "" {
					return nil, errAt(expr, start, "empty delimited identifier")
				}
			}
			toks = append(toks, token{kind: k, pos: start, text: s})
		case c == '%':
			i++
			switch {
			case i < len(expr) && isIdentStart(expr[i]):
				for i < len(expr) && isIdentPart(expr[i]) {
					i++
				}
				toks = append(toks, token{kind: tEnv, pos: start, text: expr[start+1 : i]})
			case i < len(expr) && (expr[i] == '`' || expr[i] == '\''):
				s, n, err := unquote(expr, i)
				if err != nil {
					return nil, err
				}
				i = n
				toks = append(toks, token{kind: tEnv, pos: start, text: s})
			default:
				return nil, errAt(expr, start, "expected a name after %")
			}
		case c == '$':
			i++
			for i < len(expr) && isIdentPart(expr[i]) {
				i++
			}
			if i == start+1 {
				return nil, errAt(expr, start, "expected a name after $")
			}
			toks = append(toks, token{kind: tSpecial, pos: start, text: expr[start+1 : i]})
		case c == '@':
			i++
			for i < len(expr) && (isIdentPart(expr[i]) || strings.IndexByte("-:.+TZ", expr[i]) >= 0) {
				i++
			}
			toks = append(toks, token{kind: tDate, pos: start, text: expr[start:i]})
		default:
			if i+1 < len(expr) {
				switch two := expr[i : i+2]; two {
				case "!=", "!~", "<=", ">=":
					toks = append(toks, token{kind: tPunct, pos: start, text: two})
					i += 2
					continue
				}
			}
			if strings.IndexByte(".()[]{},|=~<>+-*/&", c) >= 0 {
				toks = append(toks, token{kind: tPunct, pos: start, text: expr[i : i+1]})
				i++
				continue
			}
			r, _ := utf8.DecodeRuneInString(expr[i:])
			return nil, errAt(expr, start, "unexpected character "+strconv.QuoteRune(r))
		}
	}
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// unquote reads the string or delimited identifier whose opening quote is at
// expr[i] and returns its value and the offset after the closing quote.
func unquote(expr string, i int) (string, int, error) {
	q := expr[i]
	start := i
	i++
	var sb strings.Builder
	plain := i // start of the current run without escapes
	for i < len(expr) {
		c := expr[i]
		if c == q {
			if sb.Len() == 0 {
				return expr[plain:i], i + 1, nil
			}
			sb.WriteString(expr[plain:i])
			return sb.String(), i + 1, nil
		}
		if c != '\\' {
			i++
			continue
		}
		sb.WriteString(expr[plain:i])
		if i+1 >= len(expr) {
			break
		}
		switch e := expr[i+1]; e {
		case '\'', '"', '`', '\\', '/':
			sb.WriteByte(e)
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			if i+6 > len(expr) {
				return "", 0, errAt(expr, i, "incomplete \\u escape")
			}
			v, err := strconv.ParseUint(expr[i+2:i+6], 16, 16)
			if err != nil {
				return "", 0, errAt(expr, i, "invalid \\u escape")
			}
			sb.WriteRune(rune(v))
			i += 4
		default:
			return "", 0, errAt(expr, i, "invalid escape \\"+string(rune(e)))
		}
		i += 2
		plain = i
	}
	what := "string literal"
	if q == '`' {
		what = "delimited identifier"
	}
	return "", 0, errAt(expr, start, "unterminated "+what)
}
