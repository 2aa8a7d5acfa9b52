# gockpt build, test and generation entry points.
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2

.PHONY: all gockpt test unit generate lint bench demo clean

all: gockpt

gockpt:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/gockpt ./cmd/gockpt

# Unit tests and end-to-end tests with real processes; they need root.
test: gockpt
	$(GO) test -count=1 -timeout 20m ./...

# Regenerate every committed generated file (protobuf Go code, parasite blob).
generate:
	./proto/gen.sh
	./internal/parasite/gen.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench: gockpt
	$(GO) test -run XXX -bench . -benchtime 3x -count 1 ./internal/parasite/ ./internal/dump/

# The main job on a demo process: start it, checkpoint it, show the images.
demo: gockpt
	./scripts/demo.sh

clean:
	rm -rf bin
