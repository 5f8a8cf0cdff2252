package libvirt_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenAdapter is an adapter that never connects: rendering needs none.
func goldenAdapter(t *testing.T) *libvirt.Adapter {
	t.Helper()
	a, err := libvirt.New(
		libvirt.WithInitiatorName("iqn.2026-01.io.volattach:golden"),
		libvirt.WithHost("golden-host"),
		libvirt.WithInitiatorFile(""),
		libvirt.WithStateDir(""),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

const goldenVolume = "0b8e5c3a-5d5e-4a59-9a36-1f0f6f3f7a11"

func scsiDisk() compute.DiskInfo {
	return compute.DiskInfo{Serial: goldenVolume, DeviceName: "sdb", Bus: compute.BusSCSI}
}

// TestDiskXML renders the guest disk of every protocol and compares it with
// its golden file (go test -run TestDiskXML -update rewrites them).
func TestDiskXML(t *testing.T) {
	a := goldenAdapter(t)
	cases := []struct {
		name string
		info volume.ConnectionInfo
		disk compute.DiskInfo
	}{
		{"file-qcow2-scsi", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{
			volume.DataPath: "/var/lib/volattach/volumes/vol.qcow2", volume.DataFormat: "qcow2",
		}}, scsiDisk()},
		{"file-raw-virtio-ro", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{
			volume.DataPath: "/var/lib/volattach/volumes/vol.raw", volume.DataAccessMode: "ro",
		}}, compute.DiskInfo{Serial: goldenVolume, DeviceName: "vdb", Bus: compute.BusVirtio}},
		{"iscsi", volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: map[string]string{
			volume.DataTargetIQN: "iqn.2026-01.io.volattach:target-1", volume.DataTargetPortal: "127.0.0.1:3260",
			volume.DataTargetLUN: "1",
		}}, scsiDisk()},
		{"iscsi-chap", volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: map[string]string{
			volume.DataTargetIQN: "iqn.2026-01.io.volattach:target-1", volume.DataTargetPortal: "[::1]:3261",
			volume.DataTargetLUN: "2", volume.DataAuthMethod: "CHAP", volume.DataAuthUsername: "chapuser",
			volume.DataAuthPassword: "chap-secret-never-in-xml",
		}}, scsiDisk()},
		// C19: a multiattach disk is shareable with cache none (upstream get_config).
		{"iscsi-multiattach", volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Multiattach: true, Data: map[string]string{
			volume.DataTargetIQN: "iqn.2026-01.io.volattach:target-1", volume.DataTargetPortal: "127.0.0.1:3260",
			volume.DataTargetLUN: "1",
		}}, compute.DiskInfo{Serial: goldenVolume, DeviceName: "sdb", Bus: compute.BusSCSI, Multiattach: true}},
		{"nbd", volume.ConnectionInfo{DriverVolumeType: volume.DriverNBD, Data: map[string]string{
			volume.DataHost: "127.0.0.1", volume.DataPort: "10901", volume.DataExportName: "vol-export",
		}}, scsiDisk()},
		{"nbd-default-port-ro", volume.ConnectionInfo{DriverVolumeType: volume.DriverNBD, Data: map[string]string{
			volume.DataHost: "127.0.0.1", volume.DataExportName: "vol-export",
		}}, compute.DiskInfo{Serial: goldenVolume, DeviceName: "sdc", Bus: compute.BusSCSI, ReadOnly: true}},
		{"rbd", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{
			volume.DataExportName: "volumes/volume-" + goldenVolume, volume.DataHosts: "10.0.0.1,10.0.0.2,10.0.0.3",
			volume.DataPorts: "6789",
		}}, compute.DiskInfo{Serial: goldenVolume, DeviceName: "vdb", Bus: compute.BusVirtio}},
		{"rbd-cephx", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{
			volume.DataExportName: "volumes/volume-" + goldenVolume, volume.DataHosts: "10.0.0.1,10.0.0.2",
			volume.DataPorts: "6789,3300", volume.DataAuthEnabled: "true", volume.DataAuthUsername: "cinder",
			volume.DataSecretType: "ceph", volume.DataSecretUUID: "457eb676-33da-42ec-9a8c-9293d545c337",
			volume.DataClusterName: "ceph", volume.DataVolumeID: goldenVolume,
		}}, scsiDisk()},
		{"nfs", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{
			volume.DataExport: "127.0.0.1:/var/lib/volattach/nfs/export", volume.DataExportName: goldenVolume,
			volume.DataFormat: "qcow2", volume.DataOptions: "vers=3",
		}}, scsiDisk()},
		{"file-raw-luks", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{
			volume.DataPath: "/var/lib/volattach/volumes/vol.raw", volume.DataFormat: "raw",
			volume.DataEncrypted: "true", volume.DataEncryptionKeyID: "volume-" + goldenVolume,
		}}, scsiDisk()},
		{"rbd-ceph-conf-monitors", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{
			volume.DataExportName: "volumes/volume-" + goldenVolume,
		}}, scsiDisk()},
		{"iscsi-lun-serial-from-connection-info", volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Serial: goldenVolume,
			Data: map[string]string{volume.DataTargetIQN: "iqn.2026-01.io.volattach:target-2", volume.DataTargetPortal: "127.0.0.1",
				volume.DataTargetLUN: "0"}},
			compute.DiskInfo{DeviceName: "sdd", Bus: compute.BusSCSI, DeviceType: "lun"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := a.DiskXML(tc.info, tc.disk)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got += "\n"
			if strings.Contains(got, "chap-secret-never-in-xml") {
				t.Fatalf("the CHAP password leaked into the disk XML:\n%s", got)
			}
			path := filepath.Join("testdata", "disk", tc.name+".xml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("disk XML differs from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// TestDiskXMLRefusesBadInput: every refused connection or disk names what
// is wrong, with the error the compute side expects.
func TestDiskXMLRefusesBadInput(t *testing.T) {
	a := goldenAdapter(t)
	iscsi := func(kv ...string) volume.ConnectionInfo {
		d := map[string]string{
			volume.DataTargetIQN: "iqn.2026-01.io.volattach:t", volume.DataTargetPortal: "127.0.0.1:3260",
			volume.DataTargetLUN: "1",
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(d, kv[i])
			} else {
				d[kv[i]] = kv[i+1]
			}
		}
		return volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: d}
	}
	cases := []struct {
		name  string
		info  volume.ConnectionInfo
		disk  compute.DiskInfo
		want  error
		field string
	}{
		{"unknown driver_volume_type", volume.ConnectionInfo{DriverVolumeType: "fibre_channel"}, scsiDisk(), compute.ErrUnsupportedVolumeDriver, ""},
		{"empty driver_volume_type", volume.ConnectionInfo{}, scsiDisk(), compute.ErrUnsupportedVolumeDriver, ""},
		{"file without path", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataPath},
		{"file with relative path", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "vol.raw"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataPath},
		{"file with unknown format", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/v", volume.DataFormat: "vmdk"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataFormat},
		{"iscsi without iqn", iscsi(volume.DataTargetIQN, ""), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataTargetIQN},
		{"iscsi without portal", iscsi(volume.DataTargetPortal, ""), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataTargetPortal},
		{"iscsi with bad portal", iscsi(volume.DataTargetPortal, "127.0.0.1:port"), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataTargetPortal},
		{"iscsi without lun", iscsi(volume.DataTargetLUN, ""), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataTargetLUN},
		{"iscsi with bad lun", iscsi(volume.DataTargetLUN, "one"), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataTargetLUN},
		{"iscsi CHAP without password", iscsi(volume.DataAuthMethod, "CHAP", volume.DataAuthUsername, "u"), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataAuthPassword},
		{"iscsi unknown auth", iscsi(volume.DataAuthMethod, "kerberos"), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataAuthMethod},
		{"bad access mode", iscsi(volume.DataAccessMode, "rx"), scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataAccessMode},
		{"nbd without host", volume.ConnectionInfo{DriverVolumeType: volume.DriverNBD, Data: map[string]string{volume.DataExportName: "e"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataHost},
		{"nbd bad port", volume.ConnectionInfo{DriverVolumeType: volume.DriverNBD, Data: map[string]string{volume.DataHost: "h", volume.DataExportName: "e", volume.DataPort: "70000"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataPort},
		{"rbd name not pool/image", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "image"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExportName},
		{"rbd auth without secret", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "p/i", volume.DataAuthEnabled: "true", volume.DataAuthUsername: "cinder"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataSecretUUID},
		{"rbd auth without user", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "p/i", volume.DataAuthEnabled: "true", volume.DataSecretUUID: "457eb676-33da-42ec-9a8c-9293d545c337"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataAuthUsername},
		{"rbd secret not ceph", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "p/i", volume.DataAuthEnabled: "true", volume.DataAuthUsername: "u", volume.DataSecretType: "iscsi", volume.DataSecretUUID: "457eb676-33da-42ec-9a8c-9293d545c337"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataSecretType},
		{"rbd name with options", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "p/i:conf=/etc/x"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExportName},
		{"rbd ports do not match hosts", volume.ConnectionInfo{DriverVolumeType: volume.DriverRBD, Data: map[string]string{volume.DataExportName: "p/i", volume.DataHosts: "a,b,c", volume.DataPorts: "1,2"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataPorts},
		{"nfs without export", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{volume.DataExportName: "f"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExport},
		{"nfs export not server:/path", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{volume.DataExport: "/srv/nfs", volume.DataExportName: "f"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExport},
		{"nfs export unclean", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{volume.DataExport: "h:/srv/../etc", volume.DataExportName: "f"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExport},
		{"nfs name with a slash", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{volume.DataExport: "h:/srv", volume.DataExportName: "../f"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataExportName},
		{"nfs bad format", volume.ConnectionInfo{DriverVolumeType: volume.DriverNFS, Data: map[string]string{volume.DataExport: "h:/srv", volume.DataExportName: "f", volume.DataFormat: "vmdk"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataFormat},
		{"encrypted without key id", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/v", volume.DataEncrypted: "true"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataEncryptionKeyID},
		{"encrypted qcow2", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/v", volume.DataFormat: "qcow2", volume.DataEncrypted: "true", volume.DataEncryptionKeyID: "k"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataFormat},
		{"encrypted neither true nor false", volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/v", volume.DataEncrypted: "maybe"}}, scsiDisk(), compute.ErrInvalidConnectionInfo, volume.DataEncrypted},
		{"no serial", iscsi(), compute.DiskInfo{DeviceName: "sdb", Bus: compute.BusSCSI}, libvirt.ErrInvalidDiskInfo, ""},
		{"serial unfit for an alias", iscsi(), compute.DiskInfo{Serial: "vol 1", DeviceName: "sdb", Bus: compute.BusSCSI}, libvirt.ErrInvalidDiskInfo, ""},
		{"no device name", iscsi(), compute.DiskInfo{Serial: goldenVolume, Bus: compute.BusSCSI}, libvirt.ErrInvalidDiskInfo, ""},
		{"device path not name", iscsi(), compute.DiskInfo{Serial: goldenVolume, DeviceName: "/dev/sdb", Bus: compute.BusSCSI}, libvirt.ErrInvalidDiskInfo, ""},
		{"unknown bus", iscsi(), compute.DiskInfo{Serial: goldenVolume, DeviceName: "hdb", Bus: "ide"}, libvirt.ErrInvalidDiskInfo, ""},
		{"unknown device type", iscsi(), compute.DiskInfo{Serial: goldenVolume, DeviceName: "sdb", Bus: compute.BusSCSI, DeviceType: "cdrom"}, libvirt.ErrInvalidDiskInfo, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.DiskXML(tc.info, tc.disk)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want an error matching %v", err, tc.want)
			}
			if tc.field == "" {
				return
			}
			var fe *libvirt.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("got %v, want a FieldError naming %q", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name %q", err, tc.field)
			}
		})
	}
}
