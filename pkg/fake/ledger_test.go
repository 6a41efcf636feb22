package fake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/fake"
)

const table = "ledger"

func newLedgerDB() *fake.DynamoDB {
	db := fake.NewDynamoDB()
	db.CreateTable(&dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("sweep"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("unit"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("sweep"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("unit"), KeyType: ddbtypes.KeyTypeRange},
		},
	})
	return db
}

func av(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
func num(v int) ddbtypes.AttributeValue   { return &ddbtypes.AttributeValueMemberN{Value: fmt.Sprint(v)} }

func key(sweep, unit string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{"sweep": av(sweep), "unit": av(unit)}
}

func item(sweep, unit string, attrs map[string]ddbtypes.AttributeValue) map[string]ddbtypes.AttributeValue {
	it := key(sweep, unit)
	for k, v := range attrs {
		it[k] = v
	}
	return it
}

// beginSweep writes the meta item unless it exists, as the ledger does.
func beginSweep(db *fake.DynamoDB, sweep string, expected int) error {
	_, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName:                aws.String(table),
		Item:                     item(sweep, "#meta", map[string]ddbtypes.AttributeValue{"expected": num(expected), "done": num(0)}),
		ConditionExpression:      aws.String("attribute_not_exists(#s)"),
		ExpressionAttributeNames: map[string]string{"#s": "sweep"},
	})
	return err
}

// record puts a unit's result and counts it, in one transaction.
func record(db *fake.DynamoDB, sweep, unit string) error {
	_, err := db.TransactWriteItems(context.Background(), &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
		{Put: &ddbtypes.Put{TableName: aws.String(table), Item: item(sweep, unit, map[string]ddbtypes.AttributeValue{"status": av("done")}),
			ConditionExpression: aws.String("attribute_not_exists(#s)"), ExpressionAttributeNames: map[string]string{"#s": "sweep"}}},
		{Update: &ddbtypes.Update{TableName: aws.String(table), Key: key(sweep, "#meta"),
			UpdateExpression: aws.String("SET #d = #d + :one"), ConditionExpression: aws.String("attribute_exists(#s)"),
			ExpressionAttributeNames:  map[string]string{"#d": "done", "#s": "sweep"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":one": num(1)}}},
	}})
	return err
}

func getItem(t *testing.T, db *fake.DynamoDB, sweep, unit string) map[string]ddbtypes.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(sweep, unit), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func numberOf(it map[string]ddbtypes.AttributeValue, name string) string {
	if n, ok := it[name].(*ddbtypes.AttributeValueMemberN); ok {
		return n.Value
	}
	return "<none>"
}

func reasons(err error) string {
	var tce *ddbtypes.TransactionCanceledException
	if !errors.As(err, &tce) {
		return fmt.Sprintf("not a TransactionCanceledException: %v", err)
	}
	var codes []string
	for _, r := range tce.CancellationReasons {
		codes = append(codes, aws.ToString(r.Code))
	}
	return strings.Join(codes, ",")
}

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return fmt.Sprint(err)
}

func TestLedgerTransactions(t *testing.T) {
	db := newLedgerDB()
	if err := beginSweep(db, "s1", 2); err != nil {
		t.Fatal(err)
	}
	if err := beginSweep(db, "s1", 9); !errors.As(err, new(*ddbtypes.ConditionalCheckFailedException)) {
		t.Fatalf("second begin: %v", err)
	}
	if got := numberOf(getItem(t, db, "s1", "#meta"), "expected"); got != "2" {
		t.Fatalf("the second begin replaced the meta item: expected %s", got)
	}
	if err := record(db, "s1", "u1"); err != nil {
		t.Fatal(err)
	}
	// A duplicate: the put's condition fails, the count is not touched.
	if err := record(db, "s1", "u1"); reasons(err) != "ConditionalCheckFailed,None" {
		t.Fatalf("duplicate record: %v", reasons(err))
	}
	// No meta item: the update's condition fails, and the put (whose own
	// condition holds) is not applied either.
	if err := record(db, "gone", "u1"); reasons(err) != "None,ConditionalCheckFailed" {
		t.Fatalf("record without meta: %v", reasons(err))
	}
	if it := getItem(t, db, "gone", "u1"); it != nil {
		t.Fatalf("a cancelled transaction wrote %v", it)
	}
	if err := record(db, "s1", "u2"); err != nil {
		t.Fatal(err)
	}
	if got := numberOf(getItem(t, db, "s1", "#meta"), "done"); got != "2" {
		t.Fatalf("done = %s after two units and a duplicate", got)
	}

	// The claim: a compound condition, one winner.
	claim := func(now int) error {
		_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
			TableName: aws.String(table), Key: key("s1", "#meta"),
			UpdateExpression:          aws.String("SET #c = :now"),
			ConditionExpression:       aws.String("attribute_exists(#s) AND #d >= #e AND attribute_not_exists(#p) AND (attribute_not_exists(#c) OR #c < :stale)"),
			ExpressionAttributeNames:  map[string]string{"#c": "summarized", "#s": "sweep", "#d": "done", "#e": "expected", "#p": "published"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":now": num(now), ":stale": num(now - 300)},
		})
		return err
	}
	if err := claim(1000); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	if err := claim(1100); !errors.As(err, new(*ddbtypes.ConditionalCheckFailedException)) {
		t.Fatalf("a claim inside the lease was granted: %v", err)
	}
	if err := claim(1400); err != nil {
		t.Fatalf("a claim after the lease was refused: %v", err)
	}
	release := func(mine int) error {
		_, err := db.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
			TableName: aws.String(table), Key: key("s1", "#meta"), UpdateExpression: aws.String("REMOVE #c"),
			ConditionExpression: aws.String("#c = :mine"), ExpressionAttributeNames: map[string]string{"#c": "summarized"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":mine": num(mine)},
		})
		return err
	}
	if err := release(1000); !errors.As(err, new(*ddbtypes.ConditionalCheckFailedException)) {
		t.Fatalf("releasing another's claim: %v", err)
	}
	if err := release(1400); err != nil || numberOf(getItem(t, db, "s1", "#meta"), "summarized") != "<none>" {
		t.Fatalf("release: %v", err)
	}
}

func TestLedgerValidation(t *testing.T) {
	ctx := context.Background()
	db := newLedgerDB()
	if err := beginSweep(db, "s1", 1); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 400*1024)
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"unused name", func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key("s1", "a"),
				ConditionExpression: aws.String("attribute_not_exists(#s)"), ExpressionAttributeNames: map[string]string{"#s": "sweep", "#x": "x"}})
			return err
		}, "ValidationException"},
		{"undefined value", func() error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("s1", "#meta"),
				UpdateExpression: aws.String("SET done = :v")})
			return err
		}, "ValidationException"},
		{"arithmetic on a missing attribute", func() error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("s1", "#meta"),
				UpdateExpression: aws.String("SET #n = #n + :one"), ExpressionAttributeNames: map[string]string{"#n": "nothing"},
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":one": num(1)}})
			return err
		}, "ValidationException"},
		{"updating the key", func() error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("s1", "#meta"),
				UpdateExpression: aws.String("SET #u = :v"), ExpressionAttributeNames: map[string]string{"#u": "unit"},
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": av("x")}})
			return err
		}, "ValidationException"},
		{"key missing its sort key", func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]ddbtypes.AttributeValue{"sweep": av("s1")}})
			return err
		}, "ValidationException"},
		{"item over 400 KB", func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("s1", "big", map[string]ddbtypes.AttributeValue{"b": av(big)})})
			return err
		}, "ValidationException"},
		{"two actions on one item", func() error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
				{Put: &ddbtypes.Put{TableName: aws.String(table), Item: key("s1", "x")}},
				{ConditionCheck: &ddbtypes.ConditionCheck{TableName: aws.String(table), Key: key("s1", "x"), ConditionExpression: aws.String("attribute_not_exists(sweep)")}},
			}})
			return err
		}, "ValidationException"},
		{"unknown table", func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("other"), Key: key("s1", "x")})
			return err
		}, "ResourceNotFoundException"},
		{"a bad number", func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("s1", "n", map[string]ddbtypes.AttributeValue{"n": &ddbtypes.AttributeValueMemberN{Value: "1e"}})})
			return err
		}, "ValidationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); code(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	if got := len(db.Items(table)); got != 1 {
		t.Fatalf("refused calls wrote items: %d", got)
	}
}

func TestLedgerUpdatesAndQuery(t *testing.T) {
	ctx := context.Background()
	db := newLedgerDB()
	for i := range 25 {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table),
			Item: item("s1", fmt.Sprintf("cleanup/%012d/eu-west-1", i), map[string]ddbtypes.AttributeValue{"n": num(i), "pad": av(strings.Repeat("p", 100_000))})})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("s2", "cleanup/x", nil)}); err != nil {
		t.Fatal(err)
	}
	out, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("s1", "cleanup/000000000003/eu-west-1"),
		UpdateExpression:          aws.String("SET #n = #n - :two, #l = list_append(if_not_exists(#l, :empty), :one) ADD #c :one2 REMOVE pad"),
		ExpressionAttributeNames:  map[string]string{"#n": "n", "#l": "l", "#c": "c"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":two": num(2), ":empty": &ddbtypes.AttributeValueMemberL{}, ":one": &ddbtypes.AttributeValueMemberL{Value: []ddbtypes.AttributeValue{num(1)}}, ":one2": num(1)},
		ReturnValues:              ddbtypes.ReturnValueAllNew})
	if err != nil {
		t.Fatal(err)
	}
	if numberOf(out.Attributes, "n") != "1" || numberOf(out.Attributes, "c") != "1" || out.Attributes["pad"] != nil {
		t.Fatalf("after update: %v", out.Attributes)
	}
	if l, ok := out.Attributes["l"].(*ddbtypes.AttributeValueMemberL); !ok || len(l.Value) != 1 {
		t.Fatalf("list_append: %v", out.Attributes["l"])
	}

	// 24 items of ~100 KB and a small one (its pad removed above): a page
	// ends with the item that takes it past 1 MB (11 big ones), with a
	// LastEvaluatedKey; the last page has none.
	query := func(limit int32, forward bool, kc string, values map[string]ddbtypes.AttributeValue) (pages []int, units []string) {
		names := map[string]string{"#s": "sweep"}
		if strings.Contains(kc, "#u") {
			names["#u"] = "unit"
		}
		p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{TableName: aws.String(table), KeyConditionExpression: aws.String(kc),
			ExpressionAttributeNames: names, ExpressionAttributeValues: values,
			ScanIndexForward: aws.Bool(forward), Limit: func() *int32 {
				if limit == 0 {
					return nil
				}
				return aws.Int32(limit)
			}()})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, len(page.Items))
			for _, it := range page.Items {
				units = append(units, it["unit"].(*ddbtypes.AttributeValueMemberS).Value)
			}
		}
		return pages, units
	}
	pages, units := query(0, true, "#s = :s", map[string]ddbtypes.AttributeValue{":s": av("s1")})
	if fmt.Sprint(pages) != "[12 11 2]" || len(units) != 25 || units[0] != "cleanup/000000000000/eu-west-1" || units[24] != "cleanup/000000000024/eu-west-1" {
		t.Fatalf("pages %v, first %s", pages, units[0])
	}
	// With Limit 5 the fifth page is full and says so; the sixth is empty.
	if pages, _ := query(5, true, "#s = :s", map[string]ddbtypes.AttributeValue{":s": av("s1")}); fmt.Sprint(pages) != "[5 5 5 5 5 0]" {
		t.Fatalf("pages at Limit 5: %v", pages)
	}
	// A sort key condition, newest first.
	_, units = query(0, false, "#s = :s AND begins_with(#u, :p)", map[string]ddbtypes.AttributeValue{":s": av("s1"), ":p": av("cleanup/00000000001")})
	if len(units) != 10 || units[0] != "cleanup/000000000019/eu-west-1" || units[9] != "cleanup/000000000010/eu-west-1" {
		t.Fatalf("begins_with, descending: %v", units)
	}
	// A key condition on anything but the keys is refused.
	_, err = db.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(table), KeyConditionExpression: aws.String("#n = :v"),
		ExpressionAttributeNames: map[string]string{"#n": "n"}, ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":v": num(1)}})
	if code(err) != "ValidationException" {
		t.Fatalf("query on a non-key attribute: %v", err)
	}
}
