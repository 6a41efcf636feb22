package org

// Member returns the account when it belongs to the organization, in
// scope or not (what sharing decisions resolve membership against).
func (d *Directory) Member(account string) (Account, bool) {
	a, ok := d.Members[account]
	return a, ok
}
