package rbd

import (
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/volume"
)

var _ volume.ConnectorValidator = (*Backend)(nil)

// ValidateConnector checks a connector before anything is exported
// (upstream driver.validate_connector).
func (b *Backend) ValidateConnector(c volume.Connector) error {
	return storage.ValidateConnector(c)
}
