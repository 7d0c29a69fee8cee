package fhirpath

import (
	"fmt"
	"strconv"
	"strings"
)

// SyntaxError reports why Compile rejected an expression and where.
type SyntaxError struct {
	Expr   string // the expression as given to Compile
	Offset int    // byte offset of the offending token in Expr
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: offset %d: %s", e.Offset, e.Msg)
}

func errAt(expr string, off int, msg string) *SyntaxError {
	return &SyntaxError{Expr: expr, Offset: off, Msg: msg}
}

// maxDepth bounds the nesting of parentheses, function arguments and
// operators, so a hostile expression cannot exhaust the stack.
const maxDepth = 100

type parser struct {
	expr  string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) fail(t token, format string, args ...any) error {
	return errAt(p.expr, t.pos, fmt.Sprintf(format, args...))
}

func (p *parser) expect(punct string) (token, error) {
	t := p.next()
	if !t.is(punct) {
		return t, p.fail(t, "expected %q, found %s", punct, t.describe())
	}
	return t, nil
}

// Binding powers, lowest first, as in the FHIRPath grammar.
const (
	precImplies = iota + 1
	precOr      // or, xor
	precAnd
	precMember // in, contains
	precEq     // = ~ != !~
	precCmp    // < > <= >=
	precUnion  // |
	precType   // is, as
	precAdd    // + - &
	precMul    // * / div mod
)

// binaryOp returns the operator t stands for in operator position and its
// binding power, or "" when t is not an operator.
func binaryOp(t token) (string, int) {
	switch t.kind {
	case tIdent:
		switch t.text {
		case "implies":
			return t.text, precImplies
		case "or", "xor":
			return t.text, precOr
		case "and":
			return t.text, precAnd
		case "in", "contains":
			return t.text, precMember
		case "is", "as":
			return t.text, precType
		case "div", "mod":
			return t.text, precMul
		}
	case tPunct:
		switch t.text {
		case "=", "~", "!=", "!~":
			return t.text, precEq
		case "<", ">", "<=", ">=":
			return t.text, precCmp
		case "|":
			return t.text, precUnion
		case "+", "-", "&":
			return t.text, precAdd
		case "*", "/":
			return t.text, precMul
		}
	}
	return "", 0
}

func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail(t, "expression nested more than %d deep", maxDepth)
	}
	return nil
}

// parseExpr parses operators binding at least as tightly as minPrec.
func (p *parser) parseExpr(minPrec int) (node, error) {
	if err := p.enter(p.peek()); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		op, prec := binaryOp(t)
		if op == "" || prec < minPrec {
			return left, nil
		}
		p.next()
		switch op {
		case "is", "as":
			ts, err := p.parseTypeSpec()
			if err != nil {
				return nil, err
			}
			left = newTypeOp(left, op, ts)
			continue
		case "and", "or", "xor", "implies", "=", "!=", "|":
		default:
			return nil, p.fail(t, "operator %q is not supported", op)
		}
		right, err := p.parseExpr(prec + 1) // all binary operators are left-associative
		if err != nil {
			return nil, err
		}
		switch op {
		case "|":
			left = &unionNode{l: left, r: right}
		case "=", "!=":
			left = &eqNode{l: left, r: right, neg: op == "!="}
		default:
			left = &logicNode{op: op, l: left, r: right}
		}
	}
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.is("-") || t.is("+") {
		p.next()
		n := p.peek()
		if n.kind != tNumber {
			return nil, p.fail(t, "unary %s is supported only before a number", t.text)
		}
		p.next()
		text := n.text
		if t.text == "-" {
			text = "-" + text
		}
		return p.parsePostfix(&literalNode{v: numberValue(text)})
	}
	term, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	return p.parsePostfix(term)
}

// parsePostfix parses the invocations and indexers that follow a term.
func (p *parser) parsePostfix(left node) (node, error) {
	for {
		t := p.peek()
		switch {
		case t.is("."):
			p.next()
			name := p.next()
			if name.kind != tIdent {
				return nil, p.fail(name, "expected a name after '.', found %s", name.describe())
			}
			var step node
			if p.peek().is("(") {
				c, err := p.parseCall(name)
				if err != nil {
					return nil, err
				}
				if c, ok := c.(*callNode); ok && (c.fn == fnAs || c.fn == fnOfType) {
					if t := typedMember(left, c.typ); t != nil {
						left = t // x.value.as(Quantity) reads valueQuantity
						continue
					}
				}
				step = c
			} else {
				step = newMember(name.text)
			}
			left = chain(left, step)
		case t.is("["):
			p.next()
			idx := p.next()
			if idx.kind != tNumber || strings.Contains(idx.text, ".") {
				return nil, p.fail(idx, "index must be a non-negative integer literal, found %s", idx.describe())
			}
			n, err := strconv.Atoi(idx.text)
			if err != nil {
				return nil, p.fail(idx, "index %s out of range", idx.text)
			}
			if _, err := p.expect("]"); err != nil {
				return nil, err
			}
			left = &indexNode{x: left, i: n}
		default:
			return left, nil
		}
	}
}

func (p *parser) parseTerm() (node, error) {
	t := p.next()
	switch t.kind {
	case tIdent:
		switch t.text {
		case "true":
			return &literalNode{v: Value{Node: true}}, nil
		case "false":
			return &literalNode{v: Value{Node: false}}, nil
		}
		if p.peek().is("(") {
			return p.parseCall(t)
		}
		if c := t.text[0]; c >= 'A' && c <= 'Z' {
			return &typeOrMemberNode{name: t.text, m: newMember(t.text)}, nil
		}
		return newMember(t.text), nil
	case tString:
		return &literalNode{v: Value{Node: t.text}}, nil
	case tNumber:
		return &literalNode{v: numberValue(t.text)}, nil
	case tEnv:
		switch t.text {
		case "resource", "rootResource":
			return envNode{resource: true}, nil
		case "context":
			return envNode{}, nil
		}
		return nil, p.fail(t, "unknown environment variable %%%s", t.text)
	case tSpecial:
		if t.text == "this" {
			return thisNode{}, nil
		}
		return nil, p.fail(t, "$%s is not supported", t.text)
	case tDate:
		return nil, p.fail(t, "date and time literals are not supported")
	case tPunct:
		switch t.text {
		case "(":
			e, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "{":
			if _, err := p.expect("}"); err != nil {
				return nil, err
			}
			return &literalNode{empty: true}, nil
		}
	}
	return nil, p.fail(t, "unexpected %s", t.describe())
}

// parseTypeSpec reads a type name, optionally qualified by FHIR or System.
func (p *parser) parseTypeSpec() (typeSpec, error) {
	t := p.next()
	if t.kind != tIdent {
		return typeSpec{}, p.fail(t, "expected a type name, found %s", t.describe())
	}
	name := t.text
	if (name == "FHIR" || name == "System") && p.peek().is(".") {
		p.next()
		n := p.next()
		if n.kind != tIdent {
			return typeSpec{}, p.fail(n, "expected a type name after %s., found %s", name, n.describe())
		}
		return newTypeSpec(name, n.text), nil
	}
	return newTypeSpec("", name), nil
}

// parseCall parses the argument list of the function named by name; the
// opening parenthesis is the next token.
func (p *parser) parseCall(name token) (node, error) {
	open, _ := p.expect("(")
	if err := p.enter(open); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	spec, ok := functions[name.text]
	if !ok {
		return nil, p.fail(name, "function %s() is not supported", name.text)
	}
	c := &callNode{fn: spec.fn, name: name.text}
	if spec.typeArg {
		ts, err := p.parseTypeSpec()
		if err != nil {
			return nil, err
		}
		c.typ = ts
		if _, err := p.expect(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	if !p.peek().is(")") {
		for {
			a, err := p.parseExpr(0)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			if !p.peek().is(",") {
				break
			}
			p.next()
		}
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	if len(c.args) < spec.minArgs || len(c.args) > spec.maxArgs {
		want := strconv.Itoa(spec.minArgs)
		if spec.maxArgs != spec.minArgs {
			want += " or " + strconv.Itoa(spec.maxArgs)
		}
		return nil, p.fail(name, "%s() takes %s argument(s), found %d", name.text, want, len(c.args))
	}
	if spec.fn == fnExtension {
		lit, ok := c.args[0].(*literalNode)
		var s string
		if ok && !lit.empty {
			s, ok = lit.v.Node.(string)
		}
		if !ok {
			return nil, p.fail(name, "extension() takes a string literal")
		}
		c.url = s
	}
	return c, nil
}

// Compile parses expr. It returns a *SyntaxError naming the byte offset of
// the first problem: a syntax error, or a construct outside the supported
// subset (see the package documentation).
func Compile(expr string) (*Expr, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{expr: expr, toks: toks}
	if p.peek().kind == tEOF {
		return nil, p.fail(p.peek(), "empty expression")
	}
	root, err := p.parseExpr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.fail(t, "unexpected %s after the end of the expression", t.describe())
	}
	return &Expr{src: expr, root: root}, nil
}

// MustCompile is Compile for expressions known to be valid; it panics on error.
func MustCompile(expr string) *Expr {
	e, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return e
}
