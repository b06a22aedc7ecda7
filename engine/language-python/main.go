// pulumi-language-python, the project's own: the language host that runs a
// Python Pulumi program for the engine.
//
// Pulumi's own host lives in a nested module (sdk/python/cmd/pulumi-language-python)
// that the Go module proxy we can reach does not serve, at any version. This one
// does the same job for `pulumi up/preview/destroy/refresh` with the SDK's own
// pieces from sdk/v3 at the engine's version: the Python toolchain package that
// resolves `runtime.options` (virtualenv, toolchain), the RPC helpers, and the
// executor script `pulumi-language-python-exec` that sits beside this binary.
// It does not generate code, pack SDKs or run Python plugins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The executor exits with this code once it has shown the user an error
// message; the engine then reports no second error of its own.
const exitAfterUserActionableMessage = 32

const executorName = "pulumi-language-python-exec"

func main() {
	showVersion := flag.Bool("version", false, "Print the plugin's version and exit")
	flag.String("tracing", "", "Accepted for the engine's sake; tracing is not emitted")
	executor := flag.String("use-executor", "", "Run this executor instead of the one beside this binary")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	if *executor == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("could not find this executable: %w", err))
		}
		*executor = filepath.Join(filepath.Dir(self), executorName)
	}
	if _, err := os.Stat(*executor); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor %s: %w", *executor, err))
	}

	host := &languageHost{executor: *executor}
	if args := flag.Args(); len(args) > 0 {
		host.engineAddress = args[0]
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cancel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancel)
	}()
	if host.engineAddress != "" {
		// Exit when the engine goes away, as every plugin does.
		if err := rpcutil.Healthcheck(ctx, host.engineAddress, 5*time.Minute, stop); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the engine health check: %w", err))
		}
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host's RPC server: %w", err))
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("the language host's RPC server stopped: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	executor      string
	engineAddress string
}

// pythonOptions reads Pulumi.yaml's runtime options the way the SDK's
// toolchain understands them.
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	options := info.GetOptions().AsMap()
	if v, ok := options["virtualenv"]; ok {
		s, ok := v.(string)
		if !ok {
			return opts, errors.New("runtime option virtualenv must be a string")
		}
		opts.Virtualenv = s
	}
	if v, ok := options["toolchain"]; ok {
		switch v {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "uv":
			opts.Toolchain = toolchain.Uv
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		default:
			return opts, fmt.Errorf("unsupported runtime option toolchain: %v", v)
		}
	}
	if v, ok := options["typechecker"]; ok {
		return opts, fmt.Errorf("runtime option typechecker (%v) is not supported by this language host", v)
	}
	return opts, nil
}

// resolveToolchain is the Python toolchain (pip, uv or poetry, and the
// virtualenv) that a program's runtime options ask for.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	opts, err := pythonOptions(info)
	if err != nil {
		return nil, err
	}
	return toolchain.ResolveToolchain(opts)
}

func (h *languageHost) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// listPluginsScript prints the pulumi-plugin.json of every installed
// distribution: the file a Pulumi package ships to name its plugin and version.
const listPluginsScript = `
import importlib.metadata, json
found = []
for dist in importlib.metadata.distributions():
    for f in dist.files or ():
        if f.name == "pulumi-plugin.json":
            try:
                found.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
print(json.dumps(found))
`

type pluginJSON struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// GetRequiredPackages names the resource plugins the program's packages ask
// for, so that the engine reports a missing one before the program runs.
func (h *languageHost) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	cmd, err := tc.Command(ctx, "-c", listPluginsScript)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the program's Pulumi packages: %w", err)
	}
	var plugins []pluginJSON
	if err := json.Unmarshal(out, &plugins); err != nil {
		return nil, fmt.Errorf("reading the program's Pulumi packages: %w", err)
	}
	var packages []*pulumirpc.PackageDependency
	for _, p := range plugins {
		if !p.Resource || p.Name == "" {
			continue
		}
		packages = append(packages, &pulumirpc.PackageDependency{
			Kind: "resource", Name: p.Name, Version: p.Version, Server: p.Server,
		})
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{Error: "attaching a debugger is not supported by this language host"}, nil
	}
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	args := []string{h.executor}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engineAddress)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	args = append(args, req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	configMap := req.GetConfig()
	if configMap == nil {
		// The executor reads "null" as no mapping at all.
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("serialising the configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serialising the secret keys: %w", err)
	}

	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	// Ctrl-C in the CLI cancels the request: let the program stop cleanly first.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))

	if err := cmd.Run(); err != nil {
		// A program that dies fast may leave output unflushed; the engine reads ours.
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not run the Python executor: %v", err)}, nil
		}
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.ExitStatus() == exitAfterUserActionableMessage {
			return &pulumirpc.RunResponse{Bail: true}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", exitErr.ExitCode())}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// InstallDependencies creates the virtualenv and installs requirements.txt,
// as `pulumi install` and `pulumi new` ask.
func (h *languageHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	if err := tc.InstallDependencies(server.Context(), req.GetInfo().GetProgramDirectory(),
		req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	return closer.Close()
}

func (h *languageHost) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: info.PythonExecutable, Version: info.PythonVersion.String()}, nil
}

func (h *languageHost) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	result := make([]*pulumirpc.DependencyInfo, 0, len(deps))
	for _, d := range deps {
		result = append(result, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: result}, nil
}

func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
