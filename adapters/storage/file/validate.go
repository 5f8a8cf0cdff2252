package file

import (
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

var _ volume.ConnectorValidator = (*Backend)(nil)

// ValidateConnector checks a connector before anything is exported
// (upstream driver.validate_connector), so the volume side refuses a bad
// connector as the caller's fault (400) with nothing exported or persisted.
func (b *Backend) ValidateConnector(c volume.Connector) error {
	return storage.ValidateConnector(c)
}
