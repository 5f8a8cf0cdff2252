package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Roles a volattachd process can take.
const (
	RoleAPI   = "api"   // the HTTP API: compute API and volume side, no host agent
	RoleAgent = "agent" // the host agent and its reconciler, no HTTP API
	RoleBoth  = "both"  // both, in one process (the default)
)

// Config is volattachd's configuration: flags, or a JSON file (-config)
// with the same names, the flags given on the command line winning.
type Config struct {
	Role   string `json:"role"`
	Listen string `json:"listen"`
	Host   string `json:"host"`

	// Etcd: an embedded server in EtcdDataDir unless EtcdEndpoints is set.
	EtcdEndpoints    string `json:"etcd_endpoints"`
	EtcdDataDir      string `json:"etcd_data_dir"`
	EtcdPrefix       string `json:"etcd_prefix"`
	EtcdCAFile       string `json:"etcd_ca_file"`
	EtcdCertFile     string `json:"etcd_cert_file"`
	EtcdKeyFile      string `json:"etcd_key_file"`
	EtcdUsername     string `json:"etcd_username"`
	EtcdPasswordFile string `json:"etcd_password_file"`
	// EtcdSessionTTL is the lease TTL of the locks and queue claims this
	// process holds (0: the default, etcd.DefaultSessionTTL).
	EtcdSessionTTL time.Duration `json:"-"`
	// SweepInterval is the time between this node's full audits of the
	// deployment (0: compute.DefaultSweepInterval; negative: never).
	SweepInterval time.Duration `json:"-"`
	// CheckServiceUp refuses a detach whose instance's host agent keeps no
	// presence key (409, upstream's check_instance_host(check_is_up)).
	CheckServiceUp bool `json:"check_service_up"`

	// Storage: the backends to enable (file, iscsi, nbd) under DataDir.
	Backends string `json:"backends"`
	DataDir  string `json:"data_dir"`
	DiskBus  string `json:"disk_bus"`

	// Auth: noauth or keystone.
	Auth                 string `json:"auth"`
	KeystoneURL          string `json:"keystone_url"`
	KeystoneUser         string `json:"keystone_user"`
	KeystonePasswordFile string `json:"keystone_password_file"`
	KeystoneProject      string `json:"keystone_project"`

	// Guests to register as servers at start-up, and their project.
	RegisterGuests string `json:"register_guests"`
	GuestProject   string `json:"guest_project"`

	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`

	ShutdownTimeout time.Duration `json:"-"`
}

// errUsage marks a bad command line or configuration.
var errUsage = errors.New("usage")

// parseConfig reads the flags (and the -config file they name).
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	c := Config{Role: RoleBoth, Listen: "127.0.0.1:8774", DataDir: "/var/lib/volattach", Backends: "iscsi",
		DiskBus: "scsi", Auth: "noauth", KeystoneProject: "service", KeystoneUser: "volattach",
		LogLevel: "info", LogFormat: "text", ShutdownTimeout: 30 * time.Second}
	fs := flag.NewFlagSet("volattachd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "JSON configuration file (keys as the flag names with _ for -); flags given win")
	fs.StringVar(&c.Role, "role", c.Role, "api (HTTP API only), agent (host agent only) or both")
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the HTTP API, /healthz and /metrics")
	fs.StringVar(&c.Host, "host", c.Host, "this compute host's name (default the host name)")
	fs.StringVar(&c.EtcdEndpoints, "etcd-endpoints", c.EtcdEndpoints, "comma-separated client URLs of an external etcd cluster (default: an embedded server)")
	fs.StringVar(&c.EtcdDataDir, "etcd-data-dir", c.EtcdDataDir, "the embedded etcd's data directory (default DATA_DIR/etcd)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", c.EtcdPrefix, "key prefix of every record")
	fs.StringVar(&c.EtcdCAFile, "etcd-ca-file", c.EtcdCAFile, "CA bundle of the external etcd's certificates")
	fs.StringVar(&c.EtcdCertFile, "etcd-cert-file", c.EtcdCertFile, "client certificate for the external etcd")
	fs.StringVar(&c.EtcdKeyFile, "etcd-key-file", c.EtcdKeyFile, "client key for the external etcd")
	fs.StringVar(&c.EtcdUsername, "etcd-username", c.EtcdUsername, "etcd user")
	fs.StringVar(&c.EtcdPasswordFile, "etcd-password-file", c.EtcdPasswordFile, "file holding the etcd user's password (never on the command line)")
	fs.DurationVar(&c.EtcdSessionTTL, "etcd-session-ttl", c.EtcdSessionTTL, "lease TTL of this process's locks and queue claims (default 15s): a holder that stops renewing loses them this long after")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", c.SweepInterval, "time between this node's full audits of every volume and export in the deployment (default 30m); negative: never (one or two nodes of a deployment suffice)")
	fs.BoolVar(&c.CheckServiceUp, "check-service-up", c.CheckServiceUp, "refuse a detach (409) when the instance's host agent is down (its presence key in etcd lapsed)")
	fs.StringVar(&c.Backends, "backends", c.Backends, "storage backends to enable: comma-separated file, iscsi, nbd; the first is the default volume type")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the volumes, backend state and embedded etcd")
	fs.StringVar(&c.DiskBus, "disk-bus", c.DiskBus, "bus of attached disks: scsi or virtio")
	fs.StringVar(&c.Auth, "auth", c.Auth, "noauth (token user:project; user admin is admin) or keystone")
	fs.StringVar(&c.KeystoneURL, "keystone-url", c.KeystoneURL, "Keystone v3 endpoint, e.g. http://127.0.0.1:5000/v3")
	fs.StringVar(&c.KeystoneUser, "keystone-user", c.KeystoneUser, "service user validating tokens")
	fs.StringVar(&c.KeystonePasswordFile, "keystone-password-file", c.KeystonePasswordFile, "file holding the service user's password")
	fs.StringVar(&c.KeystoneProject, "keystone-project", c.KeystoneProject, "the service user's project")
	fs.StringVar(&c.RegisterGuests, "register-guests", c.RegisterGuests, "comma-separated libvirt guests to record as servers at start-up")
	fs.StringVar(&c.GuestProject, "guest-project", c.GuestProject, "project owning the registered guests")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warning or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a SIGTERM waits for requests and operations in flight")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	if *file != "" {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if err := c.load(*file, set, fs); err != nil {
			return c, err
		}
	}
	return c, c.check()
}

// load reads the JSON file into c, except for the flags given.
func (c *Config) load(path string, given map[string]bool, fs *flag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	var fromFile Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromFile); err != nil {
		return fmt.Errorf("%w: %s: %w", errUsage, path, err)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(data, &raw)
	// The flags' current values: defaults, or what the command line gave.
	current := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { current[f.Name] = f.Value.String() })
	*c = fromFile
	fs.VisitAll(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		if _, inFile := raw[key]; !inFile || given[f.Name] {
			_ = fs.Set(f.Name, current[f.Name])
		}
	})
	return nil
}

func (c *Config) check() error {
	switch c.Role {
	case RoleAPI, RoleAgent, RoleBoth:
	default:
		return fmt.Errorf("%w: -role %q: want api, agent or both", errUsage, c.Role)
	}
	switch c.Auth {
	case "noauth":
	case "keystone":
		if c.KeystoneURL == "" || c.KeystonePasswordFile == "" {
			return fmt.Errorf("%w: -auth keystone needs -keystone-url and -keystone-password-file", errUsage)
		}
	default:
		return fmt.Errorf("%w: -auth %q: want noauth or keystone", errUsage, c.Auth)
	}
	if c.EtcdEndpoints != "" && c.EtcdDataDir != "" {
		return fmt.Errorf("%w: -etcd-data-dir is for the embedded etcd, but -etcd-endpoints names an external one", errUsage)
	}
	if c.Backends == "" {
		return fmt.Errorf("%w: -backends names none", errUsage)
	}
	return nil
}

// readSecret reads a password file, trimming the final newline.
func readSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}
