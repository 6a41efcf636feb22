package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDB is an in-memory DynamoDB for the organization sweep's ledger
// (awsapi.LedgerDynamoDB): tables with a partition key and an optional
// sort key, strongly consistent, with DynamoDB's semantics where the
// ledger relies on them:
//   - condition expressions on PutItem, UpdateItem and every action of
//     TransactWriteItems, failing with ConditionalCheckFailedException or
//     TransactionCanceledException (one CancellationReason per action,
//     "ConditionalCheckFailed" or "None", in request order);
//   - a transaction is all or nothing, holds at most 100 actions and never
//     two on one item;
//   - update expressions read the item as it was (SET a = a + :n on a
//     missing attribute fails), keys cannot be updated;
//   - Query by partition key (and a sort key condition), in sort key order,
//     paged at Limit items or 1 MB, with LastEvaluatedKey;
//   - placeholders given but unused, or used but not given, are a
//     ValidationException; items are limited to 400 KB.
//
// Secondary indexes, scans, TTL deletion, legacy parameters (Expected,
// AttributesToGet, KeyConditions) and ClientRequestToken are not modelled:
// the fake panics on them.
type DynamoDB struct {
	mu sync.Mutex
	// Calls counts calls per operation name.
	Calls map[string]int
	// Errors, if set for an operation, is returned (once per entry, in
	// order) before the call does anything.
	Errors map[string][]error

	tables map[string]*ddbTable
}

type ddbTable struct {
	hash, rng         string
	hashType, rngType ddbtypes.ScalarAttributeType
	items             map[string]map[string]ddbtypes.AttributeValue // by encoded key
}

// maxItemSize is DynamoDB's item size limit (400 KB).
const maxItemSize = 400 * 1024

// queryPageSize is the most a Query page reads (1 MB).
const queryPageSize = 1 << 20

// NewDynamoDB returns a DynamoDB without tables.
func NewDynamoDB() *DynamoDB {
	return &DynamoDB{Calls: map[string]int{}, Errors: map[string][]error{}, tables: map[string]*ddbTable{}}
}

// CreateTable creates a table from the same input the SDK takes (its key
// schema and attribute definitions; billing and the rest are ignored). It
// is set-up, not a modelled call: it panics on a malformed input.
func (f *DynamoDB) CreateTable(in *dynamodb.CreateTableInput) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := aws.ToString(in.TableName)
	if name == "" || f.tables[name] != nil {
		panic("fake.DynamoDB.CreateTable: missing or existing table " + name)
	}
	if len(in.GlobalSecondaryIndexes) > 0 || len(in.LocalSecondaryIndexes) > 0 {
		panic("fake.DynamoDB.CreateTable: secondary indexes are not modelled")
	}
	types := map[string]ddbtypes.ScalarAttributeType{}
	for _, d := range in.AttributeDefinitions {
		types[aws.ToString(d.AttributeName)] = d.AttributeType
	}
	t := &ddbTable{items: map[string]map[string]ddbtypes.AttributeValue{}}
	for _, k := range in.KeySchema {
		n := aws.ToString(k.AttributeName)
		if types[n] == "" {
			panic("fake.DynamoDB.CreateTable: key " + n + " has no attribute definition")
		}
		switch k.KeyType {
		case ddbtypes.KeyTypeHash:
			t.hash, t.hashType = n, types[n]
		case ddbtypes.KeyTypeRange:
			t.rng, t.rngType = n, types[n]
		}
	}
	if t.hash == "" {
		panic("fake.DynamoDB.CreateTable: no partition key")
	}
	f.tables[name] = t
}

// Items returns a copy of every item of a table, in key order.
func (f *DynamoDB) Items(table string) []map[string]ddbtypes.AttributeValue {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[table]
	if t == nil {
		panic("fake.DynamoDB.Items: no table " + table)
	}
	var out []map[string]ddbtypes.AttributeValue
	for _, item := range t.sorted() {
		out = append(out, copyItem(item))
	}
	return out
}

func (f *DynamoDB) enter(op string) error {
	f.Calls[op]++
	if errs := f.Errors[op]; len(errs) > 0 {
		f.Errors[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *DynamoDB) table(name *string) (*ddbTable, error) {
	t := f.tables[aws.ToString(name)]
	if t == nil {
		return nil, &ddbtypes.ResourceNotFoundException{Message: aws.String("fake: Requested resource not found: Table: " + aws.ToString(name) + " not found")}
	}
	return t, nil
}

// keyOf checks that key holds exactly the table's key attributes, of their
// types, and returns its encoding.
func (t *ddbTable) keyOf(key map[string]ddbtypes.AttributeValue, exact bool) (string, error) {
	want := 1
	if t.rng != "" {
		want = 2
	}
	if exact && len(key) != want {
		return "", exprError("The provided key element does not match the schema")
	}
	h, err := keyPart(key[t.hash], t.hashType)
	if err != nil {
		return "", err
	}
	if t.rng == "" {
		return h, nil
	}
	r, err := keyPart(key[t.rng], t.rngType)
	if err != nil {
		return "", err
	}
	return h + "\x00" + r, nil
}

func keyPart(v ddbtypes.AttributeValue, typ ddbtypes.ScalarAttributeType) (string, error) {
	switch v := v.(type) {
	case *ddbtypes.AttributeValueMemberS:
		if typ == ddbtypes.ScalarAttributeTypeS && v.Value != "" {
			return "S" + v.Value, nil
		}
	case *ddbtypes.AttributeValueMemberN:
		if typ == ddbtypes.ScalarAttributeTypeN {
			if r, ok := number(v.Value); ok {
				return "N" + formatNumber(r), nil
			}
		}
	case *ddbtypes.AttributeValueMemberB:
		if typ == ddbtypes.ScalarAttributeTypeB && len(v.Value) > 0 {
			return "B" + string(v.Value), nil
		}
	}
	return "", exprError("One or more parameter values were invalid: Missing the key or wrong type for a key attribute")
}

func (t *ddbTable) keyAttrs(item map[string]ddbtypes.AttributeValue) map[string]ddbtypes.AttributeValue {
	out := map[string]ddbtypes.AttributeValue{t.hash: copyValue(item[t.hash])}
	if t.rng != "" {
		out[t.rng] = copyValue(item[t.rng])
	}
	return out
}

// sorted lists the items by partition, then sort key order.
func (t *ddbTable) sorted() []map[string]ddbtypes.AttributeValue {
	out := make([]map[string]ddbtypes.AttributeValue, 0, len(t.items))
	for _, item := range t.items {
		out = append(out, item)
	}
	slices.SortFunc(out, func(a, b map[string]ddbtypes.AttributeValue) int {
		if c := cmpKey(a[t.hash], b[t.hash]); c != 0 {
			return c
		}
		if t.rng == "" {
			return 0
		}
		return cmpKey(a[t.rng], b[t.rng])
	})
	return out
}

func cmpKey(a, b ddbtypes.AttributeValue) int {
	switch a := a.(type) {
	case *ddbtypes.AttributeValueMemberS:
		return strings.Compare(a.Value, b.(*ddbtypes.AttributeValueMemberS).Value)
	case *ddbtypes.AttributeValueMemberN:
		return numCmp(a.Value, b.(*ddbtypes.AttributeValueMemberN).Value)
	case *ddbtypes.AttributeValueMemberB:
		return bytes.Compare(a.Value, b.(*ddbtypes.AttributeValueMemberB).Value)
	}
	panic("fake.DynamoDB: key of another type")
}

// checkItem refuses what DynamoDB refuses in an item to store.
func checkItem(item map[string]ddbtypes.AttributeValue) error {
	for _, v := range item {
		if err := validValue(v); err != nil {
			return err
		}
	}
	if n := itemSize(item); n > maxItemSize {
		return exprError("Item size has exceeded the maximum allowed size (%d bytes > %d)", n, maxItemSize)
	}
	return nil
}

func checkValues(values map[string]ddbtypes.AttributeValue) error {
	for _, v := range values {
		if err := validValue(v); err != nil {
			return err
		}
	}
	return nil
}

// condition parses an optional condition expression.
func condition(expr *string, ctx *exprCtx) (*cond, error) {
	if expr == nil {
		return nil, nil
	}
	if *expr == "" {
		return nil, exprError("Invalid ConditionExpression: The expression can not be empty")
	}
	return parseCondition(*expr, ctx)
}

func conditionFailed(rv ddbtypes.ReturnValuesOnConditionCheckFailure, old map[string]ddbtypes.AttributeValue) error {
	e := &ddbtypes.ConditionalCheckFailedException{Message: aws.String("fake: The conditional request failed")}
	if rv == ddbtypes.ReturnValuesOnConditionCheckFailureAllOld {
		e.Item = copyItem(old)
	}
	return e
}

// GetItem reads one item (every read is strongly consistent).
func (f *DynamoDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.AttributesToGet) > 0 {
		panic("fake.DynamoDB.GetItem: AttributesToGet is not modelled")
	}
	if err := f.enter("GetItem"); err != nil {
		return nil, err
	}
	t, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	ctx := newExprCtx(in.ExpressionAttributeNames, nil)
	var proj []docPath
	if in.ProjectionExpression != nil {
		if proj, err = parseProjection(*in.ProjectionExpression, ctx); err != nil {
			return nil, err
		}
	}
	if err := ctx.checkUnused(); err != nil {
		return nil, err
	}
	k, err := t.keyOf(in.Key, true)
	if err != nil {
		return nil, err
	}
	item, ok := t.items[k]
	if !ok {
		return &dynamodb.GetItemOutput{}, nil
	}
	return &dynamodb.GetItemOutput{Item: copyItem(project(item, proj))}, nil
}

// PutItem writes a whole item, if its condition holds.
func (f *DynamoDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Expected) > 0 || in.ConditionalOperator != "" {
		panic("fake.DynamoDB.PutItem: Expected and ConditionalOperator are not modelled")
	}
	if err := f.enter("PutItem"); err != nil {
		return nil, err
	}
	t, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	if in.ReturnValues != "" && in.ReturnValues != ddbtypes.ReturnValueNone && in.ReturnValues != ddbtypes.ReturnValueAllOld {
		return nil, exprError("ReturnValues can only be ALL_OLD or NONE")
	}
	op, err := t.put(in.Item, in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure)
	if err != nil {
		return nil, err
	}
	old := op.apply(t)
	out := &dynamodb.PutItemOutput{}
	if in.ReturnValues == ddbtypes.ReturnValueAllOld {
		out.Attributes = copyItem(old)
	}
	return out, nil
}

// pendingWrite is a checked write, applied once every check has passed.
type pendingWrite struct {
	key    string
	item   map[string]ddbtypes.AttributeValue // nil: nothing to write (a condition check)
	remove bool
}

func (w pendingWrite) apply(t *ddbTable) map[string]ddbtypes.AttributeValue {
	old := t.items[w.key]
	switch {
	case w.remove:
		delete(t.items, w.key)
	case w.item != nil:
		t.items[w.key] = w.item
	}
	return old
}

// put checks a put (validation, then its condition against the item now).
func (t *ddbTable) put(item map[string]ddbtypes.AttributeValue, condExpr *string, names map[string]string, values map[string]ddbtypes.AttributeValue,
	rv ddbtypes.ReturnValuesOnConditionCheckFailure) (pendingWrite, error) {
	ctx := newExprCtx(names, values)
	c, err := condition(condExpr, ctx)
	if err != nil {
		return pendingWrite{}, err
	}
	if err := ctx.checkUnused(); err != nil {
		return pendingWrite{}, err
	}
	if err := checkValues(values); err != nil {
		return pendingWrite{}, err
	}
	k, err := t.keyOf(item, false)
	if err != nil {
		return pendingWrite{}, err
	}
	if err := checkItem(item); err != nil {
		return pendingWrite{}, err
	}
	old := t.items[k]
	if c != nil && !c.eval(old) {
		return pendingWrite{}, conditionFailed(rv, old)
	}
	return pendingWrite{key: k, item: copyItem(item)}, nil
}

// update checks an update and computes the new item.
func (t *ddbTable) update(key map[string]ddbtypes.AttributeValue, updExpr, condExpr *string, names map[string]string,
	values map[string]ddbtypes.AttributeValue, rv ddbtypes.ReturnValuesOnConditionCheckFailure) (pendingWrite, error) {
	ctx := newExprCtx(names, values)
	if updExpr == nil {
		panic("fake.DynamoDB: an update without UpdateExpression (AttributeUpdates) is not modelled")
	}
	actions, err := parseUpdate(*updExpr, ctx)
	if err != nil {
		return pendingWrite{}, err
	}
	c, err := condition(condExpr, ctx)
	if err != nil {
		return pendingWrite{}, err
	}
	if err := ctx.checkUnused(); err != nil {
		return pendingWrite{}, err
	}
	if err := checkValues(values); err != nil {
		return pendingWrite{}, err
	}
	k, err := t.keyOf(key, true)
	if err != nil {
		return pendingWrite{}, err
	}
	for _, a := range actions {
		if a.path[0].name == t.hash || a.path[0].name == t.rng {
			return pendingWrite{}, exprError("One or more parameter values were invalid: Cannot update attribute %s. This attribute is part of the key", a.path[0].name)
		}
	}
	old := t.items[k]
	if c != nil && !c.eval(old) {
		return pendingWrite{}, conditionFailed(rv, old)
	}
	base := old
	if base == nil {
		base = t.keyAttrs(key)
	}
	item, err := applyUpdate(base, actions)
	if err != nil {
		return pendingWrite{}, err
	}
	if err := checkItem(item); err != nil {
		return pendingWrite{}, err
	}
	return pendingWrite{key: k, item: item}, nil
}

// UpdateItem changes (or creates) one item, if its condition holds.
// ReturnValues NONE, ALL_OLD and ALL_NEW are modelled.
func (f *DynamoDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Expected) > 0 || len(in.AttributeUpdates) > 0 || in.ConditionalOperator != "" {
		panic("fake.DynamoDB.UpdateItem: Expected, AttributeUpdates and ConditionalOperator are not modelled")
	}
	switch in.ReturnValues {
	case "", ddbtypes.ReturnValueNone, ddbtypes.ReturnValueAllOld, ddbtypes.ReturnValueAllNew:
	default:
		panic("fake.DynamoDB.UpdateItem: ReturnValues " + string(in.ReturnValues) + " is not modelled")
	}
	if err := f.enter("UpdateItem"); err != nil {
		return nil, err
	}
	t, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	w, err := t.update(in.Key, in.UpdateExpression, in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure)
	if err != nil {
		return nil, err
	}
	old := w.apply(t)
	out := &dynamodb.UpdateItemOutput{}
	switch in.ReturnValues {
	case ddbtypes.ReturnValueAllOld:
		out.Attributes = copyItem(old)
	case ddbtypes.ReturnValueAllNew:
		out.Attributes = copyItem(w.item)
	}
	return out, nil
}

// TransactWriteItems checks every action against the items as they are,
// then applies all of them, or none.
func (f *DynamoDB) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.ClientRequestToken != nil {
		panic("fake.DynamoDB.TransactWriteItems: ClientRequestToken (idempotent transactions) is not modelled")
	}
	if err := f.enter("TransactWriteItems"); err != nil {
		return nil, err
	}
	if n := len(in.TransactItems); n == 0 || n > 100 {
		return nil, exprError("1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length between 1 and 100 (got %d)", n)
	}
	type step struct {
		t *ddbTable
		w pendingWrite
	}
	steps := make([]step, len(in.TransactItems))
	reasons := make([]ddbtypes.CancellationReason, len(in.TransactItems))
	failed := false
	seen := map[string]bool{}
	for i, ti := range in.TransactItems {
		var tableName *string
		var check func(t *ddbTable) (pendingWrite, error)
		n := 0
		if p := ti.Put; p != nil {
			n++
			tableName = p.TableName
			check = func(t *ddbTable) (pendingWrite, error) {
				return t.put(p.Item, p.ConditionExpression, p.ExpressionAttributeNames, p.ExpressionAttributeValues, p.ReturnValuesOnConditionCheckFailure)
			}
		}
		if u := ti.Update; u != nil {
			n++
			tableName = u.TableName
			check = func(t *ddbTable) (pendingWrite, error) {
				return t.update(u.Key, u.UpdateExpression, u.ConditionExpression, u.ExpressionAttributeNames, u.ExpressionAttributeValues, u.ReturnValuesOnConditionCheckFailure)
			}
		}
		if c := ti.ConditionCheck; c != nil {
			n++
			tableName = c.TableName
			check = func(t *ddbTable) (pendingWrite, error) {
				return t.conditionCheck(c.Key, c.ConditionExpression, c.ExpressionAttributeNames, c.ExpressionAttributeValues, c.ReturnValuesOnConditionCheckFailure, false)
			}
		}
		if d := ti.Delete; d != nil {
			n++
			tableName = d.TableName
			check = func(t *ddbTable) (pendingWrite, error) {
				return t.conditionCheck(d.Key, d.ConditionExpression, d.ExpressionAttributeNames, d.ExpressionAttributeValues, d.ReturnValuesOnConditionCheckFailure, true)
			}
		}
		if n != 1 {
			return nil, exprError("TransactItems[%d]: exactly one of ConditionCheck, Put, Update or Delete is required (got %d)", i, n)
		}
		t, err := f.table(tableName)
		if err != nil {
			return nil, err
		}
		w, err := check(t)
		if err == nil || isConditionFailed(err) {
			k := aws.ToString(tableName) + "\x01" + w.key
			if err != nil {
				k = aws.ToString(tableName) + "\x01" + t.mustKey(ti)
			}
			if seen[k] {
				return nil, exprError("Transaction request cannot include multiple operations on one item")
			}
			seen[k] = true
		}
		switch {
		case err == nil:
			steps[i] = step{t: t, w: w}
			reasons[i] = ddbtypes.CancellationReason{Code: aws.String("None")}
		case isConditionFailed(err):
			failed = true
			var ccf *ddbtypes.ConditionalCheckFailedException
			errors.As(err, &ccf)
			reasons[i] = ddbtypes.CancellationReason{Code: aws.String("ConditionalCheckFailed"), Message: aws.String("The conditional request failed"), Item: ccf.Item}
		default:
			// A validation error in one action fails the whole request.
			return nil, err
		}
	}
	if failed {
		codes := make([]string, len(reasons))
		for i, r := range reasons {
			codes[i] = aws.ToString(r.Code)
		}
		return nil, &ddbtypes.TransactionCanceledException{
			Message:             aws.String("fake: Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"),
			CancellationReasons: reasons,
		}
	}
	for _, s := range steps {
		s.w.apply(s.t)
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

func isConditionFailed(err error) bool {
	return errors.As(err, new(*ddbtypes.ConditionalCheckFailedException))
}

// mustKey is the encoded key an action names (its condition failed, so
// its key was already checked).
func (t *ddbTable) mustKey(ti ddbtypes.TransactWriteItem) string {
	var key map[string]ddbtypes.AttributeValue
	switch {
	case ti.Put != nil:
		key = ti.Put.Item
	case ti.Update != nil:
		key = ti.Update.Key
	case ti.ConditionCheck != nil:
		key = ti.ConditionCheck.Key
	case ti.Delete != nil:
		key = ti.Delete.Key
	}
	k, _ := t.keyOf(key, false)
	return k
}

func (t *ddbTable) conditionCheck(key map[string]ddbtypes.AttributeValue, condExpr *string, names map[string]string,
	values map[string]ddbtypes.AttributeValue, rv ddbtypes.ReturnValuesOnConditionCheckFailure, remove bool) (pendingWrite, error) {
	ctx := newExprCtx(names, values)
	if condExpr == nil && !remove {
		return pendingWrite{}, exprError("ConditionCheck: ConditionExpression is required")
	}
	c, err := condition(condExpr, ctx)
	if err != nil {
		return pendingWrite{}, err
	}
	if err := ctx.checkUnused(); err != nil {
		return pendingWrite{}, err
	}
	k, err := t.keyOf(key, true)
	if err != nil {
		return pendingWrite{}, err
	}
	old := t.items[k]
	if c != nil && !c.eval(old) {
		return pendingWrite{}, conditionFailed(rv, old)
	}
	return pendingWrite{key: k, remove: remove}, nil
}

// Query reads one partition in sort key order (descending with
// ScanIndexForward false), paged at Limit items or 1 MB.
func (f *DynamoDB) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if in.IndexName != nil || len(in.KeyConditions) > 0 || len(in.QueryFilter) > 0 || len(in.AttributesToGet) > 0 ||
		(in.Select != "" && in.Select != ddbtypes.SelectAllAttributes) {
		panic(fmt.Sprintf("fake.DynamoDB.Query: indexes, legacy conditions and Select %q are not modelled", in.Select))
	}
	if err := f.enter("Query"); err != nil {
		return nil, err
	}
	t, err := f.table(in.TableName)
	if err != nil {
		return nil, err
	}
	if in.KeyConditionExpression == nil {
		return nil, exprError("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
	}
	ctx := newExprCtx(in.ExpressionAttributeNames, in.ExpressionAttributeValues)
	kc, err := parseCondition(*in.KeyConditionExpression, ctx)
	if err != nil {
		return nil, err
	}
	var filter *cond
	if in.FilterExpression != nil {
		if filter, err = parseCondition(*in.FilterExpression, ctx); err != nil {
			return nil, err
		}
	}
	var proj []docPath
	if in.ProjectionExpression != nil {
		if proj, err = parseProjection(*in.ProjectionExpression, ctx); err != nil {
			return nil, err
		}
	}
	if err := ctx.checkUnused(); err != nil {
		return nil, err
	}
	if err := t.checkKeyCondition(kc); err != nil {
		return nil, err
	}
	limit := int(aws.ToInt32(in.Limit))
	if in.Limit != nil && limit < 1 {
		return nil, exprError("Limit must be at least 1")
	}
	var matching []map[string]ddbtypes.AttributeValue
	for _, item := range t.sorted() {
		if kc.eval(item) {
			matching = append(matching, item)
		}
	}
	if in.ScanIndexForward != nil && !*in.ScanIndexForward {
		slices.Reverse(matching)
	}
	start := 0
	if in.ExclusiveStartKey != nil {
		k, err := t.keyOf(in.ExclusiveStartKey, true)
		if err != nil {
			return nil, exprError("The provided starting key is invalid: %v", err)
		}
		start = len(matching)
		for i, item := range matching {
			if ik, _ := t.keyOf(item, false); ik == k {
				start = i + 1
				break
			}
		}
	}
	out := &dynamodb.QueryOutput{}
	read := 0
	i := start
	for ; i < len(matching); i++ {
		if (limit > 0 && int(out.ScannedCount) == limit) || read >= queryPageSize {
			break
		}
		item := matching[i]
		read += itemSize(item)
		out.ScannedCount++
		if filter != nil && !filter.eval(item) {
			continue
		}
		out.Items = append(out.Items, copyItem(project(item, proj)))
	}
	out.Count = int32(len(out.Items)) //nolint:gosec // a page holds at most 1 MB of items
	// DynamoDB returns a LastEvaluatedKey whenever it stopped at Limit or
	// 1 MB, even when nothing is left.
	if i > start && (i < len(matching) || (limit > 0 && int(out.ScannedCount) == limit)) {
		out.LastEvaluatedKey = t.keyAttrs(matching[i-1])
	}
	return out, nil
}

// checkKeyCondition accepts what DynamoDB accepts: partition key = value,
// optionally AND one condition on the sort key (=, <, <=, >, >=, BETWEEN,
// begins_with) against values.
func (t *ddbTable) checkKeyCondition(c *cond) error {
	parts := []*cond{c}
	if c.op == "and" {
		parts = c.subs
	}
	hashOK := false
	for _, p := range parts {
		switch {
		case p.op == "cmp" && p.cmp == "=" && len(p.args[0].path) == 1 && p.args[0].path[0].name == t.hash && p.args[1].value != nil && !hashOK:
			hashOK = true
		case t.rng != "" && isSortCondition(p, t.rng):
		default:
			return exprError("Query key condition not supported")
		}
	}
	if !hashOK {
		return exprError("Query condition missed key schema element: %s", t.hash)
	}
	return nil
}

func isSortCondition(c *cond, rng string) bool {
	onRange := len(c.args) > 0 && len(c.args[0].path) == 1 && c.args[0].path[0].name == rng
	values := true
	for _, a := range c.args[1:] {
		values = values && a.value != nil
	}
	switch c.op {
	case "cmp":
		return onRange && values && c.cmp != "<>"
	case "between":
		return onRange && values
	case "fn":
		return c.fn == "begins_with" && onRange && values
	}
	return false
}
