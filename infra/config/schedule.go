package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Schedule is a validated EventBridge schedule expression, rate(...) or
// cron(...), with the longest time it leaves between two runs: the silence
// alarms wait two of those before they call a run missing.
type Schedule struct {
	// Expression is the expression as given, for the EventBridge rule.
	Expression string
	// MaxInterval is the longest gap between consecutive runs over a
	// simulated span of two years; zero when the schedule runs at most once
	// in that span.
	MaxInterval time.Duration
	// MinInterval is the shortest gap between consecutive runs (zero like
	// MaxInterval).
	MinInterval time.Duration
}

// simulationStart and simulationSpan fix the calendar the cron gaps are
// measured over, so the same expression always synthesizes the same alarm:
// two years, one of them a leap year, every weekday/month combination.
var (
	simulationStart = time.Date(2027, time.January, 1, 0, 0, 0, 0, time.UTC)
	simulationSpan  = 2 * 366 * 24 * time.Hour
)

var reRate = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// ParseSchedule validates expr as EventBridge does (the EventBridge User
// Guide's "Schedule expressions": rate with a singular unit for 1 and a
// plural one otherwise; cron with six fields, one of day-of-month and
// day-of-week "?") and measures its longest interval. A cron expression must
// repeat every year (year field "*"): the housekeeper's sweeps are not meant
// to stop on a date.
func ParseSchedule(expr string) (Schedule, error) {
	switch {
	case strings.HasPrefix(expr, "rate("):
		m := reRate.FindStringSubmatch(expr)
		if m == nil {
			return Schedule{}, fmt.Errorf("%q: want rate(<n> <unit>) with unit minute(s), hour(s) or day(s), e.g. rate(12 hours)", expr)
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return Schedule{}, fmt.Errorf("%q: the rate must be a whole number of at least 1", expr)
		}
		unit := m[2]
		if singular := n == 1; singular != !strings.HasSuffix(unit, "s") {
			want := strings.TrimSuffix(unit, "s")
			if !singular {
				want += "s"
			}
			return Schedule{}, fmt.Errorf("%q: EventBridge wants %q with %d", expr, want, n)
		}
		per := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(unit, "s")]
		return Schedule{Expression: expr, MaxInterval: time.Duration(n) * per, MinInterval: time.Duration(n) * per}, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(strings.TrimSuffix(strings.TrimPrefix(expr, "cron("), ")"))
		if err != nil {
			return Schedule{}, fmt.Errorf("%q: %w", expr, err)
		}
		longest, shortest := c.intervals(simulationStart, simulationSpan)
		return Schedule{Expression: expr, MaxInterval: longest, MinInterval: shortest}, nil
	}
	return Schedule{}, fmt.Errorf("%q: want rate(...) or cron(...), e.g. cron(0 3 * * ? *) for daily at 03:00 UTC", expr)
}

// cron is a parsed six-field EventBridge cron expression.
type cron struct {
	minutes, hours, months [61]bool // index = value
	dom                    domRule
	dow                    dowRule
}

// domRule is the day-of-month field: a set of days, "L" (last day) or
// "<n>W" (the weekday nearest day n, within the month); any=true for "?".
type domRule struct {
	any     bool
	days    [32]bool
	last    bool
	weekday int // n of nW, 0 = unused
}

// dowRule is the day-of-week field (1-7 = SUN-SAT): a set of days, "<d>L"
// (the last weekday d of the month) or "<d>#<n>" (the nth weekday d).
type dowRule struct {
	any  bool
	days [8]bool
	last int // d of dL
	nth  [2]int
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

func parseCron(body string) (*cron, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, fmt.Errorf("want 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	c := &cron{}
	if err := parseSet(f[0], 0, 59, nil, c.minutes[:]); err != nil {
		return nil, fmt.Errorf("minutes: %w", err)
	}
	if err := parseSet(f[1], 0, 23, nil, c.hours[:]); err != nil {
		return nil, fmt.Errorf("hours: %w", err)
	}
	if err := parseSet(f[3], 1, 12, monthNames, c.months[:]); err != nil {
		return nil, fmt.Errorf("month: %w", err)
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf(`exactly one of day-of-month (%q) and day-of-week (%q) must be "?"`, f[2], f[4])
	}
	if err := c.dom.parse(f[2]); err != nil {
		return nil, fmt.Errorf("day-of-month: %w", err)
	}
	if err := c.dow.parse(f[4]); err != nil {
		return nil, fmt.Errorf("day-of-week: %w", err)
	}
	if f[5] != "*" {
		return nil, fmt.Errorf(`year: %q: a housekeeping schedule must repeat every year; use "*"`, f[5])
	}
	return c, nil
}

// parseSet reads a field of "*", values, ranges, lists and steps into set.
func parseSet(field string, lo, hi int, names map[string]int, set []bool) error {
	for _, part := range strings.Split(field, ",") {
		rangePart, step := part, 1
		if base, s, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return fmt.Errorf("%q: the step after / must be a whole number of at least 1", part)
			}
			rangePart, step = base, n
		}
		from, to := lo, hi
		switch {
		case rangePart == "*":
		case strings.Contains(rangePart, "-"):
			a, b, _ := strings.Cut(rangePart, "-")
			var err error
			if from, err = value(a, lo, hi, names); err != nil {
				return err
			}
			if to, err = value(b, lo, hi, names); err != nil {
				return err
			}
			if from > to {
				return fmt.Errorf("%q: the range runs backwards", rangePart)
			}
		default:
			v, err := value(rangePart, lo, hi, names)
			if err != nil {
				return err
			}
			from = v
			if !strings.Contains(part, "/") {
				to = v
			}
		}
		for v := from; v <= to; v += step {
			set[v] = true
		}
	}
	return nil
}

func value(s string, lo, hi int, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(s)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%q: want a value from %d to %d", s, lo, hi)
	}
	return v, nil
}

func (d *domRule) parse(field string) error {
	switch {
	case field == "?":
		d.any = true
	case field == "L":
		d.last = true
	case strings.HasSuffix(field, "W"):
		n, err := value(strings.TrimSuffix(field, "W"), 1, 31, nil)
		if err != nil {
			return fmt.Errorf("%q: want <day>W, e.g. 3W", field)
		}
		d.weekday = n
	default:
		return parseSet(field, 1, 31, nil, d.days[:])
	}
	return nil
}

func (d *dowRule) parse(field string) error {
	switch {
	case field == "?":
		d.any = true
	case strings.Contains(field, "#"):
		a, b, _ := strings.Cut(field, "#")
		day, err := value(a, 1, 7, dayNames)
		if err != nil {
			return err
		}
		n, err := value(b, 1, 5, nil)
		if err != nil {
			return fmt.Errorf("%q: the week after # must be 1 to 5", field)
		}
		d.nth = [2]int{day, n}
	case strings.HasSuffix(field, "L") && field != "L":
		day, err := value(strings.TrimSuffix(field, "L"), 1, 7, dayNames)
		if err != nil {
			return err
		}
		d.last = day
	case field == "L":
		d.days[7] = true // "L" alone is the last day of the week, Saturday
	default:
		return parseSet(field, 1, 7, dayNames, d.days[:])
	}
	return nil
}

// matchesDay reports whether the cron runs on day t (UTC).
func (c *cron) matchesDay(t time.Time) bool {
	if !c.months[int(t.Month())] {
		return false
	}
	if !c.dom.any {
		return c.dom.matches(t)
	}
	return c.dow.matches(t)
}

func (d *domRule) matches(t time.Time) bool {
	lastDay := time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	switch {
	case d.last:
		return t.Day() == lastDay
	case d.weekday > 0:
		target := min(d.weekday, lastDay)
		// The weekday nearest the target, never crossing into another month.
		want := time.Date(t.Year(), t.Month(), target, 0, 0, 0, 0, time.UTC)
		switch want.Weekday() {
		case time.Saturday:
			want = want.AddDate(0, 0, -1)
			if want.Month() != t.Month() {
				want = want.AddDate(0, 0, 3)
			}
		case time.Sunday:
			want = want.AddDate(0, 0, 1)
			if want.Month() != t.Month() {
				want = want.AddDate(0, 0, -3)
			}
		}
		return t.Day() == want.Day()
	}
	return d.days[t.Day()]
}

func (d *dowRule) matches(t time.Time) bool {
	day := int(t.Weekday()) + 1 // EventBridge: 1 = SUN
	switch {
	case d.last > 0:
		return day == d.last && t.AddDate(0, 0, 7).Month() != t.Month()
	case d.nth[0] > 0:
		return day == d.nth[0] && (t.Day()-1)/7+1 == d.nth[1]
	}
	return d.days[day]
}

// intervals are the longest and shortest gaps between consecutive runs in
// [start, start+span); zero when the cron runs fewer than twice in it.
func (c *cron) intervals(start time.Time, span time.Duration) (longest, shortest time.Duration) {
	var prev time.Time
	runs := 0
	for day := start; day.Before(start.Add(span)); day = day.AddDate(0, 0, 1) {
		if !c.matchesDay(day) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !c.hours[h] {
				continue
			}
			for m := 0; m < 60; m++ {
				if !c.minutes[m] {
					continue
				}
				t := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
				if runs > 0 {
					longest = max(longest, t.Sub(prev))
					if gap := t.Sub(prev); shortest == 0 || gap < shortest {
						shortest = gap
					}
				}
				prev, runs = t, runs+1
			}
		}
	}
	if runs < 2 {
		return 0, 0
	}
	return longest, shortest
}
