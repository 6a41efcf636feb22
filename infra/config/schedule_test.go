package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseScheduleInterval(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"rate(1 minute)", time.Minute},
		{"rate(15 minutes)", 15 * time.Minute},
		{"rate(12 hours)", 12 * time.Hour},
		{"rate(1 day)", day},
		{"rate(3 days)", 3 * day},
		{"cron(0 3 * * ? *)", day},
		{"cron(*/5 * * * ? *)", 5 * time.Minute},
		{"cron(0 3,15 * * ? *)", 12 * time.Hour},
		{"cron(0 9 ? * MON-FRI *)", 3 * day}, // Friday 09:00 to Monday 09:00
		{"cron(0 9 ? * 2-6 *)", 3 * day},     // the same in numbers: 1 = SUN
		{"cron(0 2 ? * SUN *)", 7 * day},
		{"cron(30 1 1 * ? *)", 31 * day},
		{"cron(0 0 L * ? *)", 31 * day},
		{"cron(0 0 ? * 6L *)", 5 * 7 * day},  // last Friday of the month
		{"cron(0 0 ? * 2#1 *)", 5 * 7 * day}, // first Monday of the month
		{"cron(0 0 15W * ? *)", 32 * day},    // 2027-07-15 (Thu) to 2027-08-16 (Mon)
		{"cron(0 0 29 2 ? *)", 0},            // once in the simulated two years
		{"cron(0 4 1-7 JAN,JUL ? *)", 184*day - 6*day},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			s, err := ParseSchedule(tc.expr)
			if err != nil {
				t.Fatalf("ParseSchedule: %v", err)
			}
			if s.MaxInterval != tc.want || s.Expression != tc.expr {
				t.Errorf("got %v (%q), want %v", s.MaxInterval, s.Expression, tc.want)
			}
		})
	}
}

func TestParseScheduleRejects(t *testing.T) {
	for _, tc := range []struct{ expr, wantErr string }{
		{"every day", "want rate(...) or cron(...)"},
		{"", "want rate(...) or cron(...)"},
		{"rate(1 days)", `wants "day" with 1`},
		{"rate(2 hour)", `wants "hours" with 2`},
		{"rate(0 minutes)", "at least 1"},
		{"rate(5 weeks)", "unit minute(s), hour(s) or day(s)"},
		{"cron(0 3 * * *)", "want 6 fields"},
		{"cron(0 3 * * * *)", `exactly one of day-of-month`},
		{"cron(0 3 ? * ? *)", `exactly one of day-of-month`},
		{"cron(60 3 * * ? *)", `minutes: "60": want a value from 0 to 59`},
		{"cron(0 24 * * ? *)", "hours:"},
		{"cron(0 3 32 * ? *)", "day-of-month:"},
		{"cron(0 3 * 13 ? *)", "month:"},
		{"cron(0 3 ? * 8 *)", "day-of-week:"},
		{"cron(0 3 ? * 0 *)", "day-of-week:"}, // EventBridge counts 1-7 from Sunday
		{"cron(0 3 ? * 2#6 *)", "the week after # must be 1 to 5"},
		{"cron(0 3 * * ? 2027)", "must repeat every year"},
		{"cron(0 5-3 * * ? *)", "runs backwards"},
		{"cron(0 */0 * * ? *)", "step after /"},
		{"cron(0 3 * FOO ? *)", "month:"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := ParseSchedule(tc.expr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if tc.expr != "" && !strings.Contains(err.Error(), tc.expr) {
				t.Errorf("err %q does not quote the expression", err)
			}
		})
	}
}

func TestScheduleMinInterval(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"rate(2 hours)", 2 * time.Hour},
		{"cron(0 3 * * ? *)", 24 * time.Hour},
		{"cron(0,30 3 * * ? *)", 30 * time.Minute}, // two runs half an hour apart, daily
		{"cron(0 9-17 ? * MON-FRI *)", time.Hour},
	} {
		s, err := ParseSchedule(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if s.MinInterval != tc.want {
			t.Errorf("%s: shortest gap %v, want %v", tc.expr, s.MinInterval, tc.want)
		}
	}
}
