# ami-housekeeper — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
# The Go toolchain every target builds and tests with, fetched through the
# module proxy when the machine's own is older: go1.26.10 fixes the standard
# library vulnerabilities (net/http, crypto/tls, crypto/x509) that
# `make vulncheck` finds reachable under go1.26.8.
export GOTOOLCHAIN := go1.26.10
FUNCTIONS := tagger cleanup sharing dispatcher
TOOLS     := $(CURDIR)/.tools
VENV      := $(TOOLS)/venv
DIST      := $(CURDIR)/dist
HOSTBIN   := $(CURDIR)/.build/host

# Pinned tool versions.
RIE_VERSION        := v0.0.0-20261030222936-bef5c4ba774d
GOLANGCI_VERSION   := v2.15.0
GOVULNCHECK_VERSION := v1.1.4
# The Go vulnerability database, as the golang.org/x/vulndb module (its OSV
# files, through the module proxy); its own indexdb tool turns them into the
# database govulncheck reads, so no step needs vuln.go.dev. Bump to update.
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
VULNDB              := $(CURDIR)/.build/vulndb/$(VULNDB_VERSION)

# Fuzz targets, package:function (go test -fuzz takes one at a time).
FUZZ_TARGETS := ./pkg/amievents:FuzzParseEvent ./pkg/policy:FuzzParse ./pkg/sharing:FuzzParseException ./pkg/fanout:FuzzParseUnit ./pkg/org:FuzzParseScope
FUZZTIME     ?= 60s

# Lambda binaries: provided.al2023 on arm64, static, stripped, no RPC shim.
LAMBDA_ENV   := CGO_ENABLED=0 GOOS=linux GOARCH=arm64
BUILD_FLAGS  := -trimpath -tags lambda.norpc -ldflags='-s -w'

# The operator CLI, built for this machine; its version is the checkout's.
CLI_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CLI_FLAGS   := -trimpath -ldflags='-s -w -X github.com/ami-housekeeper/ami-housekeeper/pkg/cli.Version=$(CLI_VERSION)'
GORELEASER_VERSION := v2.15.1

# The Node.js the CDK CLI and the CDK app's jsii runtime run on: Node 24 (LTS)
# from the npm registry, pinned in package.json's optionalDependencies (one
# package per Linux platform, so `npm ci` installs the one that fits). Where
# none fits (macOS), the machine's own node is used: install Node 22 or 24.
# Recursive (=), so a target that runs `npm ci` first still finds it.
NODE_BIN = $(firstword $(wildcard $(CURDIR)/node_modules/node-linux-*/bin/node) $(shell command -v node))
export JSII_NODE = $(NODE_BIN)
CDK = $(NODE_BIN) $(CURDIR)/node_modules/aws-cdk/bin/cdk
# Extra arguments for every cdk command, e.g. CDK_ARGS='-c policyFile=policy.yaml'.
# Account and region come from the usual AWS_PROFILE / AWS_REGION.
CDK_ARGS ?=
# deploy asks before anything widens IAM or security groups; set
# APPROVAL=never for an unattended pipeline that reviewed `make diff`.
APPROVAL ?= broadening

# What the tests and the demo need to find (see pkg/emulator).
TEST_ENV := MOTO_SERVER=$(VENV)/bin/moto_server AWS_LAMBDA_RIE=$(TOOLS)/bin/aws-lambda-rie HOUSEKEEPER_BIN_DIR=$(HOSTBIN)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build dist/<function>/bootstrap (linux/arm64) and dist/<function>.zip for every function, and the CLI for this machine (dist/ami-housekeeper).
	@for fn in $(FUNCTIONS); do \
		echo "building $$fn (linux/arm64)"; \
		$(LAMBDA_ENV) $(GO) build $(BUILD_FLAGS) -o $(DIST)/$$fn/bootstrap ./functions/$$fn || exit 1; \
		rm -f $(DIST)/$$fn.zip; \
		(cd $(DIST)/$$fn && python3 -m zipfile -c ../$$fn.zip bootstrap) || exit 1; \
	done
	@echo "building ami-housekeeper $(CLI_VERSION) (this machine)"
	CGO_ENABLED=0 $(GO) build $(CLI_FLAGS) -o $(DIST)/ami-housekeeper ./cmd/ami-housekeeper

.PHONY: cli-docs
cli-docs: ## Regenerate the command reference in docs/cli.md from the CLI's command tree.
	$(GO) run ./cmd/gen-cli-docs -file docs/cli.md

.PHONY: release-check
release-check: ## Validate .goreleaser.yaml with GoReleaser (pinned; built through the module proxy).
	$(GO) run github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION) check

.PHONY: release-snapshot
release-snapshot: ## Build the CLI's release archives locally into .build/release/ (no tag, nothing published).
	$(GO) run github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION) release --snapshot --clean

.PHONY: build-host
build-host: ## Build the same functions for this machine, to run under the Lambda runtime emulator, and the CLI (for the demo).
	@for fn in $(FUNCTIONS); do \
		CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(HOSTBIN)/$$fn/bootstrap ./functions/$$fn || exit 1; \
	done
	CGO_ENABLED=0 $(GO) build $(CLI_FLAGS) -o $(HOSTBIN)/ami-housekeeper ./cmd/ami-housekeeper

.PHONY: tools
tools: $(VENV)/.installed $(TOOLS)/bin/aws-lambda-rie ## Install the pinned moto server (Python venv) and Lambda runtime emulator into .tools/.

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(TOOLS)/bin/aws-lambda-rie:
	GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

.PHONY: test
test: tools build build-host node_modules/.installed ## Run every test: unit, moto integration, runtime-emulator end-to-end, CDK template; then fuzz-short.
	$(TEST_ENV) $(GO) test -count=1 -timeout 40m ./...
	@$(MAKE) --no-print-directory fuzz-short

.PHONY: fuzz
fuzz: ## Fuzz each parser for FUZZTIME (default 60s), one after another; a crasher lands in the package's testdata/fuzz/.
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t##*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}" || exit 1; \
	done

# fuzz-short counts executions instead of seconds: a duration -fuzztime races
# the fuzzing coordinator's own deadline (go.dev/issue/75804, fixed in Go
# 1.27) and can fail with a bare "context deadline exceeded" and no input.
.PHONY: fuzz-short
fuzz-short: ## Fuzz each parser for 30,000 inputs (a few seconds; make test runs it; the seed corpora run in every go test).
	@$(MAKE) --no-print-directory fuzz FUZZTIME=30000x

.PHONY: mutation
mutation: tools ## Break each safety invariant in a copy of the tree and check its named tests fail (docs/safety.md).
	$(TEST_ENV) $(GO) run ./cmd/mutation-check -doc docs/safety.md

.PHONY: bench
bench: tools build build-host ## Run the benchmarks quoted in README.md and print the binary sizes.
	@for fn in $(FUNCTIONS); do stat -c '%n: %s bytes' $(DIST)/$$fn/bootstrap; done
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchtime 20x ./functions/tagger/
	$(TEST_ENV) $(GO) test -run '^$$' -bench FourSnapshots -benchtime 200x ./pkg/tagger/
	$(TEST_ENV) $(GO) test -run '^$$' -bench Plan100k -benchtime 3x ./pkg/cleanup/
	$(TEST_ENV) $(GO) test -run '^$$' -bench Backlog1000 -benchtime 3x ./pkg/cleanup/execute/
	$(TEST_ENV) $(GO) test -run '^$$' -bench CleanupBehindThrottle -benchtime 1x -timeout 30m ./functions/cleanup/
	$(TEST_ENV) $(GO) test -run '^$$' -bench CheckImageEvent -benchtime 100x ./pkg/sharing/
	$(TEST_ENV) $(GO) test -run '^$$' -bench Audit10k -benchtime 1x ./pkg/sharing/audit/
	$(TEST_ENV) $(GO) test -run '^$$' -bench OrgSweep -benchtime 1x -timeout 60m -v ./test/orgscale/
	$(TEST_ENV) HOUSEKEEPER_CLI_BIN=$(DIST)/ami-housekeeper $(GO) test -run '^$$' -bench Plan5000 -benchtime 2x ./cmd/ami-housekeeper/
	$(TEST_ENV) $(GO) test -run '^$$' -bench Burst -benchtime 1x -timeout 30m -v ./test/burst/

.PHONY: demo
demo: tools build-host ## Run the main jobs locally: moto + real function binaries + real events; prints the tags written and the cleanup report; then the CLI's plan, explain, apply and restore; then a cleanup sweep across an organization (dispatcher, units queue, workers) and a member account's event.
	$(TEST_ENV) $(GO) run ./cmd/demo

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: synth
synth: build node_modules/.installed ## Synthesize every stack (one per configured region) into cdk.out/; no AWS account needed.
	rm -rf cdk.out
	$(CDK) synth --quiet $(CDK_ARGS)
	@ls -l cdk.out/*.template.json

.PHONY: bootstrap
bootstrap: build node_modules/.installed ## Bootstrap the CDK in the target account and region(s) (once per account and region; needs credentials).
	$(CDK) bootstrap $(CDK_ARGS)

.PHONY: diff
diff: build node_modules/.installed ## Show what `make deploy` would change in every stack (needs credentials).
	$(CDK) diff --all $(CDK_ARGS)

.PHONY: deploy
deploy: build node_modules/.installed ## Deploy every stack (needs credentials); asks before IAM is widened unless APPROVAL=never.
	$(CDK) deploy --all --require-approval $(APPROVAL) $(CDK_ARGS)

.PHONY: destroy
destroy: node_modules/.installed ## Uninstall: delete every stack (retained resources are listed in docs/deploy.md).
	$(CDK) destroy --all $(CDK_ARGS)

.PHONY: cfn-lint
cfn-lint: synth tools ## Lint the synthesized template with cfn-lint.
	$(VENV)/bin/cfn-lint cdk.out/*.template.json

.PHONY: lint
lint: golangci-lint vulncheck ## golangci-lint and govulncheck.

.PHONY: vulncheck
vulncheck: $(VULNDB)/index/db.json ## govulncheck, offline, against the pinned vulnerability database (VULNDB_VERSION).
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(VULNDB) ./...

$(VULNDB)/index/db.json:
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	rm -rf $(VULNDB).tmp && mkdir -p $(dir $(VULNDB))
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) \
		-vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(VULNDB).tmp
	rm -rf $(VULNDB) && mv $(VULNDB).tmp $(VULNDB)

.PHONY: golangci-lint
golangci-lint: ## golangci-lint at its pinned version (.golangci.yml).
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION) run ./...

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: clean
clean: ## Remove build output.
	rm -rf $(DIST) .build cdk.out
