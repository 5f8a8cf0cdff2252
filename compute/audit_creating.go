package compute

import "context"

// failCreation moves a volume stuck in creating to error through the
// volume side (volume.Service.FailStuckCreation), which re-reads it under
// the volume lock its creation holds throughout: a creation still running
// is waited for and then found finished, and nothing is written.
func (x *repair) failCreation(ctx context.Context) (string, error) {
	if x.r.repairer == nil {
		return "", ErrNoVolumeRepairer
	}
	failed, err := x.r.repairer.FailStuckCreation(ctx, x.f.VolumeID)
	if err != nil {
		return "", err
	}
	if !failed {
		return "", nil // its creation finished meanwhile
	}
	return "status creating -> error", nil
}
