package etcd_test

import (
	"os"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }
