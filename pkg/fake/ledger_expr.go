package fake

import (
	"bytes"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB's expression language, the part the DynamoDB fake models:
// condition expressions (comparisons, BETWEEN, IN, AND, OR, NOT,
// parentheses, attribute_exists, attribute_not_exists, attribute_type,
// begins_with, contains, size), update expressions (SET with + and -,
// if_not_exists and list_append; REMOVE; ADD; DELETE), key conditions and
// projections. Paths are names or #placeholders, with .member and [index]
// steps. Reserved words are not checked: the callers use placeholders.

// exprError is a ValidationException with DynamoDB's wording where it matters.
func exprError(format string, args ...any) error {
	return apiErrorf("ValidationException", format, args...)
}

type tokKind int

const (
	tEOF tokKind = iota
	tName
	tNamePH  // #name
	tValuePH // :value
	tNumber  // a list index
	tOp      // = <> < <= > >= + - ( ) , . [ ]
)

type token struct {
	kind tokKind
	text string
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#' || c == ':':
			j := i + 1
			for j < len(s) && (isWordByte(s[j])) {
				j++
			}
			if j == i+1 {
				return nil, exprError("Invalid expression: a %c must be followed by a name at %q", c, s[i:])
			}
			kind := tNamePH
			if c == ':' {
				kind = tValuePH
			}
			out = append(out, token{kind, s[i:j]})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case isWordByte(s[i]):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{tName, s[i:j]})
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch {
			case two == "<>" || two == "<=" || two == ">=":
				out = append(out, token{tOp, two})
				i += 2
			case strings.ContainsRune("=<>+-(),.[]", c):
				out = append(out, token{tOp, string(c)})
				i++
			default:
				return nil, exprError("Invalid expression: unexpected character %q", c)
			}
		}
	}
	return append(out, token{kind: tEOF}), nil
}

func isWordByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// exprCtx resolves placeholders and records which were used.
type exprCtx struct {
	names      map[string]string
	values     map[string]ddbtypes.AttributeValue
	usedNames  map[string]bool
	usedValues map[string]bool
}

func newExprCtx(names map[string]string, values map[string]ddbtypes.AttributeValue) *exprCtx {
	return &exprCtx{names: names, values: values, usedNames: map[string]bool{}, usedValues: map[string]bool{}}
}

// checkUnused fails like DynamoDB when a placeholder was given but never used.
func (c *exprCtx) checkUnused() error {
	var names, values []string
	for k := range c.names {
		if !c.usedNames[k] {
			names = append(names, k)
		}
	}
	for k := range c.values {
		if !c.usedValues[k] {
			values = append(values, k)
		}
	}
	slices.Sort(names)
	slices.Sort(values)
	switch {
	case len(names) > 0:
		return exprError("Value provided in ExpressionAttributeNames unused in expressions: keys: {%s}", strings.Join(names, ", "))
	case len(values) > 0:
		return exprError("Value provided in ExpressionAttributeValues unused in expressions: keys: {%s}", strings.Join(values, ", "))
	}
	return nil
}

// pathStep is one step of a document path: a member name or a list index.
type pathStep struct {
	name  string
	index int // when name is ""
}

type docPath []pathStep

func (p docPath) String() string {
	var b strings.Builder
	for i, s := range p {
		switch {
		case s.name == "":
			fmt.Fprintf(&b, "[%d]", s.index)
		case i > 0:
			b.WriteString("." + s.name)
		default:
			b.WriteString(s.name)
		}
	}
	return b.String()
}

// parser reads one expression.
type parser struct {
	toks []token
	pos  int
	ctx  *exprCtx
}

func newParser(expr string, ctx *exprCtx) (*parser, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks, ctx: ctx}, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }

func (p *parser) isOp(op string) bool { t := p.peek(); return t.kind == tOp && t.text == op }

// isWord says whether the next token is the keyword w (case-insensitive).
func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tName && strings.EqualFold(t.text, w)
}

func (p *parser) expectOp(op string) error {
	if !p.isOp(op) {
		return exprError("Invalid expression: expected %q, found %q", op, p.peek().text)
	}
	p.pos++
	return nil
}

func (p *parser) end() error {
	if p.peek().kind != tEOF {
		return exprError("Invalid expression: unexpected %q", p.peek().text)
	}
	return nil
}

// path reads a document path.
func (p *parser) path() (docPath, error) {
	var out docPath
	first := true
	for {
		t := p.next()
		var name string
		switch t.kind {
		case tName:
			name = t.text
		case tNamePH:
			v, ok := p.ctx.names[t.text]
			if !ok {
				return nil, exprError("An expression attribute name used in the document path is not defined; attribute name: %s", t.text)
			}
			p.ctx.usedNames[t.text] = true
			name = v
		default:
			if first {
				return nil, exprError("Invalid expression: expected an attribute name, found %q", t.text)
			}
			return nil, exprError("Invalid expression: expected a member name after '.', found %q", t.text)
		}
		first = false
		out = append(out, pathStep{name: name})
		for p.isOp("[") {
			p.pos++
			n := p.next()
			if n.kind != tNumber {
				return nil, exprError("Invalid expression: list index %q", n.text)
			}
			i, _ := strconv.Atoi(n.text)
			out = append(out, pathStep{index: i})
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
		}
		if !p.isOp(".") {
			return out, nil
		}
		p.pos++
	}
}

// operand is a path, a value placeholder or size(path); in updates also
// if_not_exists and list_append.
type operand struct {
	path  docPath
	value ddbtypes.AttributeValue
	fn    string // "size", "if_not_exists", "list_append"
	args  []operand
}

func (p *parser) value() (ddbtypes.AttributeValue, error) {
	t := p.next()
	v, ok := p.ctx.values[t.text]
	if !ok {
		return nil, exprError("An expression attribute value used in expression is not defined; attribute value: %s", t.text)
	}
	p.ctx.usedValues[t.text] = true
	return v, nil
}

func (p *parser) operand(update bool) (operand, error) {
	t := p.peek()
	if t.kind == tValuePH {
		v, err := p.value()
		return operand{value: v}, err
	}
	if t.kind == tName && p.toks[p.pos+1].kind == tOp && p.toks[p.pos+1].text == "(" {
		fn := strings.ToLower(t.text)
		switch {
		case fn == "size" && !update:
		case (fn == "if_not_exists" || fn == "list_append") && update:
		default:
			return operand{}, exprError("Invalid function name; function: %s", t.text)
		}
		p.pos += 2
		o := operand{fn: fn}
		for {
			var a operand
			var err error
			if fn == "size" || (fn == "if_not_exists" && len(o.args) == 0) {
				var path docPath
				path, err = p.path()
				a = operand{path: path}
			} else {
				a, err = p.operand(update)
			}
			if err != nil {
				return operand{}, err
			}
			o.args = append(o.args, a)
			if p.isOp(",") {
				p.pos++
				continue
			}
			break
		}
		want := map[string]int{"size": 1, "if_not_exists": 2, "list_append": 2}[fn]
		if len(o.args) != want {
			return operand{}, exprError("Incorrect number of operands for function %s: %d", fn, len(o.args))
		}
		return o, p.expectOp(")")
	}
	path, err := p.path()
	return operand{path: path}, err
}

// cond is a parsed condition.
type cond struct {
	op   string // and, or, not, cmp, between, in, fn
	cmp  string // =, <>, <, <=, >, >=
	fn   string
	subs []*cond
	args []operand
}

func parseCondition(expr string, ctx *exprCtx) (*cond, error) {
	p, err := newParser(expr, ctx)
	if err != nil {
		return nil, err
	}
	c, err := p.or()
	if err != nil {
		return nil, err
	}
	return c, p.end()
}

func (p *parser) or() (*cond, error) {
	l, err := p.and()
	for err == nil && p.isWord("OR") {
		p.pos++
		var r *cond
		if r, err = p.and(); err == nil {
			l = &cond{op: "or", subs: []*cond{l, r}}
		}
	}
	return l, err
}

func (p *parser) and() (*cond, error) {
	l, err := p.not()
	for err == nil && p.isWord("AND") {
		p.pos++
		var r *cond
		if r, err = p.not(); err == nil {
			l = &cond{op: "and", subs: []*cond{l, r}}
		}
	}
	return l, err
}

func (p *parser) not() (*cond, error) {
	if p.isWord("NOT") {
		p.pos++
		c, err := p.not()
		return &cond{op: "not", subs: []*cond{c}}, err
	}
	return p.primary()
}

var condFunctions = map[string]int{"attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2, "begins_with": 2, "contains": 2}

func (p *parser) primary() (*cond, error) {
	if p.isOp("(") {
		p.pos++
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		return c, p.expectOp(")")
	}
	t := p.peek()
	if fn := strings.ToLower(t.text); t.kind == tName && condFunctions[fn] > 0 {
		p.pos++
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		c := &cond{op: "fn", fn: fn, args: []operand{{path: path}}}
		for p.isOp(",") {
			p.pos++
			a, err := p.operand(false)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
		}
		if len(c.args) != condFunctions[fn] {
			return nil, exprError("Incorrect number of operands for function %s: %d", fn, len(c.args))
		}
		return c, p.expectOp(")")
	}
	l, err := p.operand(false)
	if err != nil {
		return nil, err
	}
	switch {
	case p.isWord("BETWEEN"):
		p.pos++
		lo, err := p.operand(false)
		if err != nil {
			return nil, err
		}
		if !p.isWord("AND") {
			return nil, exprError("Invalid expression: BETWEEN needs AND")
		}
		p.pos++
		hi, err := p.operand(false)
		return &cond{op: "between", args: []operand{l, lo, hi}}, err
	case p.isWord("IN"):
		p.pos++
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		c := &cond{op: "in", args: []operand{l}}
		for {
			a, err := p.operand(false)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			if !p.isOp(",") {
				break
			}
			p.pos++
		}
		return c, p.expectOp(")")
	}
	t = p.next()
	if t.kind != tOp || !slices.Contains([]string{"=", "<>", "<", "<=", ">", ">="}, t.text) {
		return nil, exprError("Invalid expression: expected a comparator, found %q", t.text)
	}
	r, err := p.operand(false)
	return &cond{op: "cmp", cmp: t.text, args: []operand{l, r}}, err
}

// get reads the value at path in item (nil when absent).
func get(item map[string]ddbtypes.AttributeValue, path docPath) ddbtypes.AttributeValue {
	var cur ddbtypes.AttributeValue = &ddbtypes.AttributeValueMemberM{Value: item}
	for _, s := range path {
		switch v := cur.(type) {
		case *ddbtypes.AttributeValueMemberM:
			if s.name == "" {
				return nil
			}
			cur = v.Value[s.name]
		case *ddbtypes.AttributeValueMemberL:
			if s.name != "" || s.index >= len(v.Value) {
				return nil
			}
			cur = v.Value[s.index]
		default:
			return nil
		}
		if cur == nil {
			return nil
		}
	}
	return cur
}

// eval evaluates an operand of a condition against item (nil: absent).
func (o operand) eval(item map[string]ddbtypes.AttributeValue) ddbtypes.AttributeValue {
	switch {
	case o.value != nil:
		return o.value
	case o.fn == "size":
		v := get(item, o.args[0].path)
		n := -1
		switch v := v.(type) {
		case *ddbtypes.AttributeValueMemberS:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberB:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberL:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberM:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberSS:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberNS:
			n = len(v.Value)
		case *ddbtypes.AttributeValueMemberBS:
			n = len(v.Value)
		}
		if n < 0 {
			return nil
		}
		return &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(n)}
	}
	return get(item, o.path)
}

func (c *cond) eval(item map[string]ddbtypes.AttributeValue) bool {
	switch c.op {
	case "and":
		return c.subs[0].eval(item) && c.subs[1].eval(item)
	case "or":
		return c.subs[0].eval(item) || c.subs[1].eval(item)
	case "not":
		return !c.subs[0].eval(item)
	case "cmp":
		return compare(c.args[0].eval(item), c.cmp, c.args[1].eval(item))
	case "between":
		v := c.args[0].eval(item)
		return compare(v, ">=", c.args[1].eval(item)) && compare(v, "<=", c.args[2].eval(item))
	case "in":
		v := c.args[0].eval(item)
		for _, a := range c.args[1:] {
			if compare(v, "=", a.eval(item)) {
				return true
			}
		}
		return false
	}
	v := get(item, c.args[0].path)
	switch c.fn {
	case "attribute_exists":
		return v != nil
	case "attribute_not_exists":
		return v == nil
	case "attribute_type":
		t, ok := c.args[1].eval(item).(*ddbtypes.AttributeValueMemberS)
		return ok && v != nil && typeName(v) == t.Value
	case "begins_with":
		switch a := c.args[1].eval(item).(type) {
		case *ddbtypes.AttributeValueMemberS:
			s, ok := v.(*ddbtypes.AttributeValueMemberS)
			return ok && strings.HasPrefix(s.Value, a.Value)
		case *ddbtypes.AttributeValueMemberB:
			b, ok := v.(*ddbtypes.AttributeValueMemberB)
			return ok && bytes.HasPrefix(b.Value, a.Value)
		}
		return false
	case "contains":
		a := c.args[1].eval(item)
		switch v := v.(type) {
		case *ddbtypes.AttributeValueMemberS:
			s, ok := a.(*ddbtypes.AttributeValueMemberS)
			return ok && strings.Contains(v.Value, s.Value)
		case *ddbtypes.AttributeValueMemberSS:
			s, ok := a.(*ddbtypes.AttributeValueMemberS)
			return ok && slices.Contains(v.Value, s.Value)
		case *ddbtypes.AttributeValueMemberNS:
			n, ok := a.(*ddbtypes.AttributeValueMemberN)
			return ok && slices.ContainsFunc(v.Value, func(x string) bool { return numCmp(x, n.Value) == 0 })
		case *ddbtypes.AttributeValueMemberL:
			return slices.ContainsFunc(v.Value, func(x ddbtypes.AttributeValue) bool { return compare(x, "=", a) })
		}
		return false
	}
	panic("fake.DynamoDB: condition " + c.op + "/" + c.fn)
}

func typeName(v ddbtypes.AttributeValue) string {
	switch v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return "S"
	case *ddbtypes.AttributeValueMemberN:
		return "N"
	case *ddbtypes.AttributeValueMemberB:
		return "B"
	case *ddbtypes.AttributeValueMemberBOOL:
		return "BOOL"
	case *ddbtypes.AttributeValueMemberNULL:
		return "NULL"
	case *ddbtypes.AttributeValueMemberM:
		return "M"
	case *ddbtypes.AttributeValueMemberL:
		return "L"
	case *ddbtypes.AttributeValueMemberSS:
		return "SS"
	case *ddbtypes.AttributeValueMemberNS:
		return "NS"
	case *ddbtypes.AttributeValueMemberBS:
		return "BS"
	}
	panic(fmt.Sprintf("fake.DynamoDB: attribute value %T is not modelled", v))
}

// number parses a DynamoDB number (up to 38 significant digits).
func number(s string) (*big.Rat, bool) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	return r, ok && s == strings.TrimSpace(s) && s != ""
}

func numCmp(a, b string) int {
	x, _ := number(a)
	y, _ := number(b)
	return x.Cmp(y)
}

// compare applies a comparator; values of different types, or an absent
// one, never compare (every comparator is false), as in DynamoDB.
func compare(a ddbtypes.AttributeValue, op string, b ddbtypes.AttributeValue) bool {
	if a == nil || b == nil || typeName(a) != typeName(b) {
		return false
	}
	var c int
	switch a := a.(type) {
	case *ddbtypes.AttributeValueMemberS:
		c = strings.Compare(a.Value, b.(*ddbtypes.AttributeValueMemberS).Value)
	case *ddbtypes.AttributeValueMemberN:
		c = numCmp(a.Value, b.(*ddbtypes.AttributeValueMemberN).Value)
	case *ddbtypes.AttributeValueMemberB:
		c = bytes.Compare(a.Value, b.(*ddbtypes.AttributeValueMemberB).Value)
	default:
		eq := equalValues(a, b)
		switch op {
		case "=":
			return eq
		case "<>":
			return !eq
		}
		return false
	}
	switch op {
	case "=":
		return c == 0
	case "<>":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func equalValues(a, b ddbtypes.AttributeValue) bool {
	if a == nil || b == nil || typeName(a) != typeName(b) {
		return false
	}
	switch a := a.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return a.Value == b.(*ddbtypes.AttributeValueMemberS).Value
	case *ddbtypes.AttributeValueMemberN:
		return numCmp(a.Value, b.(*ddbtypes.AttributeValueMemberN).Value) == 0
	case *ddbtypes.AttributeValueMemberB:
		return bytes.Equal(a.Value, b.(*ddbtypes.AttributeValueMemberB).Value)
	case *ddbtypes.AttributeValueMemberBOOL:
		return a.Value == b.(*ddbtypes.AttributeValueMemberBOOL).Value
	case *ddbtypes.AttributeValueMemberNULL:
		return true
	case *ddbtypes.AttributeValueMemberM:
		bm := b.(*ddbtypes.AttributeValueMemberM).Value
		if len(a.Value) != len(bm) {
			return false
		}
		for k, v := range a.Value {
			if !equalValues(v, bm[k]) {
				return false
			}
		}
		return true
	case *ddbtypes.AttributeValueMemberL:
		bl := b.(*ddbtypes.AttributeValueMemberL).Value
		return slices.EqualFunc(a.Value, bl, equalValues)
	case *ddbtypes.AttributeValueMemberSS:
		return sameSet(a.Value, b.(*ddbtypes.AttributeValueMemberSS).Value)
	case *ddbtypes.AttributeValueMemberNS:
		return sameSet(a.Value, b.(*ddbtypes.AttributeValueMemberNS).Value)
	}
	return false
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// updateAction is one action of an update expression.
type updateAction struct {
	kind  string // SET, REMOVE, ADD, DELETE
	path  docPath
	value operand // SET: the first operand; ADD/DELETE: the value
	arith string  // SET: "+" or "-" when the value is a sum or difference
	right operand
}

func parseUpdate(expr string, ctx *exprCtx) ([]updateAction, error) {
	p, err := newParser(expr, ctx)
	if err != nil {
		return nil, err
	}
	var out []updateAction
	seen := map[string]bool{}
	for p.peek().kind != tEOF {
		kw := strings.ToUpper(p.next().text)
		if !slices.Contains([]string{"SET", "REMOVE", "ADD", "DELETE"}, kw) {
			return nil, exprError("Invalid UpdateExpression: expected SET, REMOVE, ADD or DELETE, found %q", kw)
		}
		if seen[kw] {
			return nil, exprError("Invalid UpdateExpression: The \"%s\" section can only be used once in an update expression", kw)
		}
		seen[kw] = true
		for {
			path, err := p.path()
			if err != nil {
				return nil, err
			}
			a := updateAction{kind: kw, path: path}
			switch kw {
			case "SET":
				if err := p.expectOp("="); err != nil {
					return nil, err
				}
				if a.value, err = p.operand(true); err != nil {
					return nil, err
				}
				if p.isOp("+") || p.isOp("-") {
					a.arith = p.next().text
					if a.right, err = p.operand(true); err != nil {
						return nil, err
					}
				}
			case "ADD", "DELETE":
				if p.peek().kind != tValuePH {
					return nil, exprError("Invalid UpdateExpression: %s takes a value placeholder", kw)
				}
				v, err := p.value()
				if err != nil {
					return nil, err
				}
				a.value = operand{value: v}
			}
			out = append(out, a)
			if !p.isOp(",") {
				break
			}
			p.pos++
		}
	}
	if len(out) == 0 {
		return nil, exprError("Invalid UpdateExpression: The expression can not be empty")
	}
	for i := range out {
		for j := range i {
			if overlap(out[i].path, out[j].path) {
				return nil, exprError("Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [%s], path two: [%s]", out[j].path, out[i].path)
			}
		}
	}
	return out, nil
}

func overlap(a, b docPath) bool {
	n := min(len(a), len(b))
	return slices.Equal(a[:n], b[:n])
}

// evalSet evaluates a SET operand against the item as it was before the update.
func (o operand) evalSet(old map[string]ddbtypes.AttributeValue) (ddbtypes.AttributeValue, error) {
	switch o.fn {
	case "if_not_exists":
		if v := get(old, o.args[0].path); v != nil {
			return v, nil
		}
		return o.args[1].evalSet(old)
	case "list_append":
		a, err := o.args[0].evalSet(old)
		if err != nil {
			return nil, err
		}
		b, err := o.args[1].evalSet(old)
		if err != nil {
			return nil, err
		}
		la, okA := a.(*ddbtypes.AttributeValueMemberL)
		lb, okB := b.(*ddbtypes.AttributeValueMemberL)
		if !okA || !okB {
			return nil, exprError("Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append")
		}
		return &ddbtypes.AttributeValueMemberL{Value: append(slices.Clone(la.Value), lb.Value...)}, nil
	}
	if o.value != nil {
		return o.value, nil
	}
	v := get(old, o.path)
	if v == nil {
		return nil, exprError("The provided expression refers to an attribute that does not exist in the item")
	}
	return v, nil
}

func arithmetic(a ddbtypes.AttributeValue, op string, b ddbtypes.AttributeValue) (ddbtypes.AttributeValue, error) {
	x, okA := a.(*ddbtypes.AttributeValueMemberN)
	y, okB := b.(*ddbtypes.AttributeValueMemberN)
	if !okA || !okB {
		return nil, exprError("Invalid UpdateExpression: Incorrect operand type for operator or function; operator: %s", op)
	}
	rx, _ := number(x.Value)
	ry, _ := number(y.Value)
	if op == "+" {
		rx = new(big.Rat).Add(rx, ry)
	} else {
		rx = new(big.Rat).Sub(rx, ry)
	}
	return &ddbtypes.AttributeValueMemberN{Value: formatNumber(rx)}, nil
}

func formatNumber(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	return strings.TrimRight(strings.TrimRight(r.FloatString(38), "0"), ".")
}

// setAt writes v at path, creating nothing but the last step (DynamoDB
// fails when a parent does not exist).
func setAt(item map[string]ddbtypes.AttributeValue, path docPath, v ddbtypes.AttributeValue) error {
	if len(path) == 1 {
		item[path[0].name] = v
		return nil
	}
	parent := get(item, path[:len(path)-1])
	last := path[len(path)-1]
	switch p := parent.(type) {
	case *ddbtypes.AttributeValueMemberM:
		if last.name != "" {
			p.Value[last.name] = v
			return nil
		}
	case *ddbtypes.AttributeValueMemberL:
		if last.name == "" {
			if last.index < len(p.Value) {
				p.Value[last.index] = v
			} else {
				p.Value = append(p.Value, v)
			}
			return nil
		}
	}
	return exprError("The document path provided in the update expression is invalid for update")
}

func removeAt(item map[string]ddbtypes.AttributeValue, path docPath) {
	if len(path) == 1 {
		delete(item, path[0].name)
		return
	}
	last := path[len(path)-1]
	switch p := get(item, path[:len(path)-1]).(type) {
	case *ddbtypes.AttributeValueMemberM:
		delete(p.Value, last.name)
	case *ddbtypes.AttributeValueMemberL:
		if last.name == "" && last.index < len(p.Value) {
			p.Value = slices.Delete(p.Value, last.index, last.index+1)
		}
	}
}

// applyUpdate returns the item after the actions (old is not changed).
func applyUpdate(old map[string]ddbtypes.AttributeValue, actions []updateAction) (map[string]ddbtypes.AttributeValue, error) {
	// Every operand reads the item as it was: evaluate first, then write.
	type write struct {
		path   docPath
		v      ddbtypes.AttributeValue
		remove bool
	}
	var writes []write
	for _, a := range actions {
		cur := get(old, a.path)
		switch a.kind {
		case "SET":
			v, err := a.value.evalSet(old)
			if err != nil {
				return nil, err
			}
			if a.arith != "" {
				r, err := a.right.evalSet(old)
				if err != nil {
					return nil, err
				}
				if v, err = arithmetic(v, a.arith, r); err != nil {
					return nil, err
				}
			}
			writes = append(writes, write{path: a.path, v: v})
		case "REMOVE":
			writes = append(writes, write{path: a.path, remove: true})
		case "ADD":
			v, err := addValue(cur, a.value.value)
			if err != nil {
				return nil, err
			}
			writes = append(writes, write{path: a.path, v: v})
		case "DELETE":
			v, err := deleteValue(cur, a.value.value)
			if err != nil {
				return nil, err
			}
			if v == nil {
				writes = append(writes, write{path: a.path, remove: true})
			} else {
				writes = append(writes, write{path: a.path, v: v})
			}
		}
	}
	item := copyItem(old)
	for _, w := range writes {
		if w.remove {
			removeAt(item, w.path)
			continue
		}
		if err := setAt(item, w.path, copyValue(w.v)); err != nil {
			return nil, err
		}
	}
	return item, nil
}

func addValue(cur, v ddbtypes.AttributeValue) (ddbtypes.AttributeValue, error) {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberN:
		if cur == nil {
			return v, nil
		}
		return arithmetic(cur, "+", v)
	case *ddbtypes.AttributeValueMemberSS:
		if cur == nil {
			return v, nil
		}
		c, ok := cur.(*ddbtypes.AttributeValueMemberSS)
		if !ok {
			break
		}
		out := slices.Clone(c.Value)
		for _, s := range v.Value {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return &ddbtypes.AttributeValueMemberSS{Value: out}, nil
	case *ddbtypes.AttributeValueMemberNS:
		if cur == nil {
			return v, nil
		}
		c, ok := cur.(*ddbtypes.AttributeValueMemberNS)
		if !ok {
			break
		}
		out := slices.Clone(c.Value)
		for _, s := range v.Value {
			if !slices.ContainsFunc(out, func(x string) bool { return numCmp(x, s) == 0 }) {
				out = append(out, s)
			}
		}
		return &ddbtypes.AttributeValueMemberNS{Value: out}, nil
	}
	return nil, exprError("Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD")
}

func deleteValue(cur, v ddbtypes.AttributeValue) (ddbtypes.AttributeValue, error) {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberSS:
		c, ok := cur.(*ddbtypes.AttributeValueMemberSS)
		if cur == nil {
			return nil, nil
		}
		if ok {
			out := slices.DeleteFunc(slices.Clone(c.Value), func(s string) bool { return slices.Contains(v.Value, s) })
			if len(out) == 0 {
				return nil, nil
			}
			return &ddbtypes.AttributeValueMemberSS{Value: out}, nil
		}
	case *ddbtypes.AttributeValueMemberNS:
		c, ok := cur.(*ddbtypes.AttributeValueMemberNS)
		if cur == nil {
			return nil, nil
		}
		if ok {
			out := slices.DeleteFunc(slices.Clone(c.Value), func(s string) bool {
				return slices.ContainsFunc(v.Value, func(x string) bool { return numCmp(x, s) == 0 })
			})
			if len(out) == 0 {
				return nil, nil
			}
			return &ddbtypes.AttributeValueMemberNS{Value: out}, nil
		}
	}
	return nil, exprError("Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE")
}

// parseProjection reads a projection: a comma-separated list of paths.
func parseProjection(expr string, ctx *exprCtx) ([]docPath, error) {
	p, err := newParser(expr, ctx)
	if err != nil {
		return nil, err
	}
	var out []docPath
	for {
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		out = append(out, path)
		if !p.isOp(",") {
			break
		}
		p.pos++
	}
	return out, p.end()
}

// project keeps the projected top-level attributes (a nested path keeps
// its whole top-level attribute: the fake does not trim inside documents).
func project(item map[string]ddbtypes.AttributeValue, paths []docPath) map[string]ddbtypes.AttributeValue {
	if paths == nil {
		return item
	}
	out := map[string]ddbtypes.AttributeValue{}
	for _, p := range paths {
		if len(p) > 1 {
			panic("fake.DynamoDB: projecting a nested path (" + p.String() + ") is not modelled")
		}
		if v, ok := item[p[0].name]; ok {
			out[p[0].name] = v
		}
	}
	return out
}

func copyItem(item map[string]ddbtypes.AttributeValue) map[string]ddbtypes.AttributeValue {
	if item == nil {
		return nil
	}
	out := make(map[string]ddbtypes.AttributeValue, len(item))
	for k, v := range item {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v ddbtypes.AttributeValue) ddbtypes.AttributeValue {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return &ddbtypes.AttributeValueMemberS{Value: v.Value}
	case *ddbtypes.AttributeValueMemberN:
		return &ddbtypes.AttributeValueMemberN{Value: v.Value}
	case *ddbtypes.AttributeValueMemberB:
		return &ddbtypes.AttributeValueMemberB{Value: bytes.Clone(v.Value)}
	case *ddbtypes.AttributeValueMemberBOOL:
		return &ddbtypes.AttributeValueMemberBOOL{Value: v.Value}
	case *ddbtypes.AttributeValueMemberNULL:
		return &ddbtypes.AttributeValueMemberNULL{Value: v.Value}
	case *ddbtypes.AttributeValueMemberM:
		return &ddbtypes.AttributeValueMemberM{Value: copyItem(v.Value)}
	case *ddbtypes.AttributeValueMemberL:
		out := make([]ddbtypes.AttributeValue, len(v.Value))
		for i, e := range v.Value {
			out[i] = copyValue(e)
		}
		return &ddbtypes.AttributeValueMemberL{Value: out}
	case *ddbtypes.AttributeValueMemberSS:
		return &ddbtypes.AttributeValueMemberSS{Value: slices.Clone(v.Value)}
	case *ddbtypes.AttributeValueMemberNS:
		return &ddbtypes.AttributeValueMemberNS{Value: slices.Clone(v.Value)}
	case *ddbtypes.AttributeValueMemberBS:
		out := make([][]byte, len(v.Value))
		for i, b := range v.Value {
			out[i] = bytes.Clone(b)
		}
		return &ddbtypes.AttributeValueMemberBS{Value: out}
	}
	panic(fmt.Sprintf("fake.DynamoDB: attribute value %T is not modelled", v))
}

// validValue checks what DynamoDB refuses in any value: numbers that are
// not numbers, empty sets, sets with repeats.
func validValue(v ddbtypes.AttributeValue) error {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberN:
		if _, ok := number(v.Value); !ok {
			return exprError("The parameter cannot be converted to a numeric value: %s", v.Value)
		}
	case *ddbtypes.AttributeValueMemberNS:
		if len(v.Value) == 0 {
			return exprError("One or more parameter values were invalid: An number set  may not be empty")
		}
		for _, n := range v.Value {
			if _, ok := number(n); !ok {
				return exprError("The parameter cannot be converted to a numeric value: %s", n)
			}
		}
	case *ddbtypes.AttributeValueMemberSS:
		if len(v.Value) == 0 {
			return exprError("One or more parameter values were invalid: An string set  may not be empty")
		}
		if len(v.Value) != len(slices.Compact(slices.Sorted(slices.Values(v.Value)))) {
			return exprError("One or more parameter values were invalid: Input collection %v contains duplicates.", v.Value)
		}
	case *ddbtypes.AttributeValueMemberM:
		for _, e := range v.Value {
			if err := validValue(e); err != nil {
				return err
			}
		}
	case *ddbtypes.AttributeValueMemberL:
		for _, e := range v.Value {
			if err := validValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// itemSize is DynamoDB's size of an item (attribute names and values).
func itemSize(item map[string]ddbtypes.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k) + valueSize(v)
	}
	return n
}

func valueSize(v ddbtypes.AttributeValue) int {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return len(v.Value)
	case *ddbtypes.AttributeValueMemberN:
		return numberSize(v.Value)
	case *ddbtypes.AttributeValueMemberB:
		return len(v.Value)
	case *ddbtypes.AttributeValueMemberBOOL, *ddbtypes.AttributeValueMemberNULL:
		return 1
	case *ddbtypes.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	case *ddbtypes.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *ddbtypes.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *ddbtypes.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *ddbtypes.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	}
	return 0
}

// numberSize: one byte per two significant digits, plus one.
func numberSize(s string) int {
	digits := strings.Trim(strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s), "0")
	return (len(digits)+1)/2 + 1
}
