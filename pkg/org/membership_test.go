package org_test

import (
	"testing"

	"github.com/ami-housekeeper/ami-housekeeper/pkg/org"
)

func TestMembership(t *testing.T) {
	d := &org.Directory{Members: map[string]org.Account{
		"222222222222": {ID: "222222222222", Path: []string{"r-ab12", "ou-ab12-aaaaaaaa", "ou-ab12-bbbbbbbb"}},
		"333333333333": {ID: "333333333333", Path: []string{"r-ab12"}},
	}}
	if a, ok := d.Member("222222222222"); !ok || a.Parent() != "ou-ab12-bbbbbbbb" {
		t.Errorf("Member(222222222222) = %+v, %v", a, ok)
	}
	if _, ok := d.Member("444444444444"); ok {
		t.Error("Member says an account the organization lacks is a member")
	}
}
