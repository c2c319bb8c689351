package importfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// generated returns a file of n data rows after a header row, as the
// writers produce it, with every column set in most rows.
func generated(tb testing.TB, format Format, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, format)
	if err != nil {
		tb.Fatal(err)
	}
	zones := []string{"Europe/Berlin", "America/New_York", "Asia/Tokyo", ""}
	for i := range n {
		r := Row{Action: ActionAdd, Email: fmt.Sprintf("user%07d@example.com", i), FirstName: "First", LastName: fmt.Sprintf("Last%d", i),
			Role: "Member", Groups: []string{"developers", fmt.Sprintf("team-%d", i%50)}, Mobile: fmt.Sprintf("+49151%08d", i),
			TimeZone: zones[i%len(zones)], Country: "DE", Locale: "de-DE"}
		if i%10 == 9 {
			r = Row{Action: ActionRemove, Email: r.Email}
		}
		if err := w.Write(r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// count reads a whole file and returns the number of valid rows; sample,
// if not nil, is called every 1,000 rows.
func count(tb testing.TB, data []byte, sample func()) int {
	r, err := NewReader(bytes.NewReader(data), int64(len(data)), Options{SkipHeader: true, MaxBytes: 256 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		if n++; sample != nil && n%1000 == 0 {
			sample()
		}
	}
}

func benchmarkRead(b *testing.B, format Format) {
	const rows = 100_000
	data := generated(b, format, rows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n := count(b, data, nil); n != rows {
			b.Fatalf("read %d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// BenchmarkReadCSV reads 100,000 rows of CSV.
func BenchmarkReadCSV(b *testing.B) { benchmarkRead(b, FormatCSV) }

// BenchmarkReadXLSX reads 100,000 rows of XLSX.
func BenchmarkReadXLSX(b *testing.B) { benchmarkRead(b, FormatXLSX) }

// TestMemoryFlat reads 10,000 and 100,000 rows and compares the peak live
// heap while reading, beyond the source bytes: streaming means the larger
// file needs about as much as the smaller one. The bound is generous, so
// that the test measures the design rather than the allocator.
func TestMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and reads 220,000 rows")
	}
	for _, format := range []Format{FormatCSV, FormatXLSX} {
		t.Run(string(format), func(t *testing.T) {
			small, large := generated(t, format, 10_000), generated(t, format, 100_000)
			growSmall, growLarge := peakGrowth(t, small), peakGrowth(t, large)
			t.Logf("%s: source %d and %d bytes; peak heap growth %d KiB and %d KiB",
				format, len(small), len(large), growSmall>>10, growLarge>>10)
			if limit := 2*growSmall + 8<<20; growLarge > limit {
				t.Errorf("reading 100,000 rows grew the heap by %d KiB, more than %d KiB (10,000 rows: %d KiB): memory is not flat",
					growLarge>>10, limit>>10, growSmall>>10)
			}
		})
	}
}

// peakGrowth returns the largest live heap seen while reading data, less
// the live heap before.
func peakGrowth(t *testing.T, data []byte) int64 {
	live := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	base := live()
	var peak int64
	count(t, data, func() {
		if l := live() - base; l > peak {
			peak = l
		}
	})
	runtime.KeepAlive(data)
	return peak
}
