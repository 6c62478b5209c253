package web

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// maxRanges bounds the parts of one multipart/byteranges answer.
const maxRanges = 16

// limitRanges rewrites a download's Range header (SECURITY-CATALOGUE
// "Range amplification"): thousands of tiny ranges cost far more CPU and
// bytes than the file itself. The satisfiable ranges are sorted and the
// ones that overlap or touch are merged; more than maxRanges left, and the
// whole file is served instead (keep false: drop the header). A header
// that does not parse is left to http.ServeContent, which answers 416.
func limitRanges(h string, size int64) (out string, keep bool) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return h, true
	}
	type span struct{ start, end int64 } // inclusive
	var spans []span
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return h, true
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var sp span
		if first == "" { // the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return h, true
			}
			if n == 0 || size == 0 {
				continue
			}
			sp = span{max(size-n, 0), size - 1}
		} else {
			start, err := strconv.ParseInt(first, 10, 64)
			if err != nil || start < 0 {
				return h, true
			}
			if start >= size {
				// Unsatisfiable, whatever its end (ServeContent does not
				// read it either); all of them is a 416.
				continue
			}
			end := size - 1
			if last != "" {
				if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
					return h, true
				}
			}
			sp = span{start, min(end, size-1)}
		}
		spans = append(spans, sp)
	}
	if len(spans) == 0 {
		return h, true
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if top := &merged[len(merged)-1]; sp.start <= top.end+1 {
			top.end = max(top.end, sp.end)
		} else {
			merged = append(merged, sp)
		}
	}
	if len(merged) > maxRanges {
		return "", false
	}
	var b strings.Builder
	b.WriteString("bytes=")
	for i, sp := range merged {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(sp.start, 10) + "-" + strconv.FormatInt(sp.end, 10))
	}
	return b.String(), true
}
