package streams

// Stats is what one side's sessions hold right now and at their peak since
// ResetPeaks.
type Stats struct {
	Sessions, Waiting            int64
	Outstanding, PeakOutstanding int64
	Buffered, PeakBuffered       int64
}

func (s *sideStats) get() Stats {
	return Stats{Sessions: s.sessions.Load(), Waiting: s.waiting.Load(),
		Outstanding: s.outstanding.Load(), PeakOutstanding: s.peakOutstanding.Load(),
		Buffered: s.buffered.Load(), PeakBuffered: s.peakBuffered.Load()}
}

// NodeStats and APIStats are the node side's and the API side's counts.
func NodeStats() Stats { return nodeStats.get() }
func APIStats() Stats  { return apiStats.get() }

// ResetPeaks starts the peaks over from the current values.
func ResetPeaks() {
	for _, s := range []*sideStats{&nodeStats, &apiStats} {
		s.peakOutstanding.Store(s.outstanding.Load())
		s.peakBuffered.Store(s.buffered.Load())
	}
}

// Window is the bytes a receiver buffers per channel.
var Window = defaultTiming.window
