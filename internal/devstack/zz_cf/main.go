package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/hashforge/hashforge/internal/devstack"
)

func main() {
	p, err := devstack.FindChromium(context.Background(), slog.New(slog.NewTextHandler(os.Stderr, nil)))
	fmt.Println(p, err)
}
