package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/netranges"
)

// rangesFile records the cluster's pod and Service ranges the data
// directory was started with, so a restart keeps its addresses (Services'
// ClusterIPs and nodes' pod ranges are stored with them) whatever other
// skiffs on the machine took meanwhile.
const rangesFile = "network-ranges.json"

// resolveRanges settles ClusterPodCIDR and ServiceCIDR before anything
// uses them: as the user gave them, else as recorded, else the first pair
// of loopback /16s no other skiff on this machine uses (internal/netranges),
// and holds the claim until Stop.
func (e *Engine) resolveRanges() error {
	path := filepath.Join(e.cfg.DataDir, rangesFile)
	var recorded netranges.Ranges
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &recorded); err != nil {
			return fmt.Errorf("read %s: %w", rangesFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", rangesFile, err)
	}
	explicit := netranges.Ranges{PodCIDR: e.given.ClusterPodCIDR, ServiceCIDR: e.given.ServiceCIDR}
	if explicit.PodCIDR == "" && e.given.PodCIDR != "" {
		// A node range given alone stands for its cluster range: the /16
		// around it (or itself, if larger), as before the choice existed.
		p, err := netip.ParsePrefix(e.given.PodCIDR)
		if err != nil {
			return fmt.Errorf("engine config: PodCIDR: %w", err)
		}
		if p.Bits() > 16 {
			p = netip.PrefixFrom(p.Addr(), 16)
		}
		explicit.PodCIDR = p.Masked().String()
	}
	got, claim, err := netranges.Resolve(netranges.Options{Explicit: explicit, Recorded: recorded,
		Dir: e.cfg.AddressClaimDir, Logger: e.log})
	if err != nil {
		return err
	}
	e.rangeClaim = claim
	for _, r := range [][3]string{{"cluster_pod_cidr", recorded.PodCIDR, got.PodCIDR}, {"service_cidr", recorded.ServiceCIDR, got.ServiceCIDR}} {
		if r[1] != "" && r[1] != r[2] {
			// Stored objects keep their addresses: Services' ClusterIPs
			// and nodes' pod ranges from the old range stay as they are.
			e.log.Warn("address range changed from the one recorded in the data directory; objects keep the addresses they have",
				"range", r[0], "recorded", r[1], "now", r[2])
		}
	}
	e.cfg.ClusterPodCIDR, e.cfg.ServiceCIDR = got.PodCIDR, got.ServiceCIDR
	if got != recorded {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.Write(path, append(b, '\n')); err != nil {
			return fmt.Errorf("record address ranges: %w", err)
		}
	}
	if recorded == (netranges.Ranges{}) && explicit == (netranges.Ranges{}) {
		e.log.Info("address ranges chosen", "cluster_pod_cidr", got.PodCIDR, "service_cidr", got.ServiceCIDR)
	}
	return nil
}
