package sqs

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	"github.com/cello-framework/cello/core/broker"
)

const component = "sqs"

// api is an SQS client together with the HTTP transport it owns.
type api struct {
	*sqs.Client
	transport *http.Transport
}

// closeIdle closes the transport's idle connections, which would otherwise
// keep their reader goroutines alive after the producer or consumer closed.
// A connection that becomes idle later is closed too.
func (a *api) closeIdle() { a.transport.CloseIdleConnections() }

// newAPI builds an SQS client for cfg. Credentials come from the config's
// access keys, else its profile or the standard AWS chain (environment,
// shared files, container and instance roles), else, with
// UseDummyCredentials, the static pair test/test.
func newAPI(ctx context.Context, cfg *Config, log broker.Logger) (*api, error) {
	// The SDK adds the CA bundle named by AWS_CA_BUNDLE to the transport of
	// a BuildableClient and rejects any other HTTP client when that variable
	// is set, so a BuildableClient goes in and its transport is taken out
	// after loading. The client timeout is a backstop above the per-call
	// deadlines, which give a long poll its wait on top of the request
	// timeout.
	httpClient := awshttp.NewBuildableClient().WithTimeout(cfg.RequestTimeout + maxWaitTimeSecs*time.Second)
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(httpClient),
		config.WithLogger(sdkLogger{log}),
	}
	switch {
	case cfg.hasStaticCredentials():
		provider := credentials.NewStaticCredentialsProvider(
			cfg.static.accessKeyID, cfg.static.secretAccessKey, cfg.static.sessionToken)
		opts = append(opts, config.WithCredentialsProvider(provider))
	case cfg.Profile != "":
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.UseDummyCredentials && !cfg.hasStaticCredentials() {
		// A local server needs no instance role, and asking the instance
		// metadata service for one costs seconds of timeouts off EC2.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: loading the AWS configuration failed: %v", broker.ErrConfig, err)
	}
	if cfg.UseDummyCredentials && !cfg.hasStaticCredentials() {
		useDummyCredentialsIfNone(ctx, &awsCfg, cfg.RequestTimeout, log)
	}
	// The SDK's own client wraps the transport in a type without
	// CloseIdleConnections, so Close could not release the connections.
	built, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok {
		return nil, fmt.Errorf("%w: the AWS configuration replaced the HTTP client with a %T",
			broker.ErrConfig, awsCfg.HTTPClient)
	}
	transport := built.GetTransport()
	awsCfg.HTTPClient = &http.Client{Transport: transport, Timeout: built.GetTimeout(), CheckRedirect: noRedirects}
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if endpoint := cfg.endpoint(); endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return &api{Client: client, transport: transport}, nil
}

// noRedirects makes the HTTP client return a redirect response as it is.
// SQS does not redirect, and following one could send signed requests to
// another host.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// useDummyCredentialsIfNone replaces the credential chain with the static
// pair test/test when the chain finds no credentials.
func useDummyCredentialsIfNone(ctx context.Context, awsCfg *aws.Config, timeout time.Duration,
	log broker.Logger,
) {
	if awsCfg.Credentials != nil {
		retrieveCtx, cancel := context.WithTimeout(ctx, timeout)
		_, err := awsCfg.Credentials.Retrieve(retrieveCtx)
		cancel()
		if err == nil {
			return
		}
	}
	log.Log(broker.LevelDebug, component, "no AWS credentials found, using dummy credentials for a local server",
		broker.F("broker", component))
	awsCfg.Credentials = aws.NewCredentialsCache(
		credentials.NewStaticCredentialsProvider(dummyAccessKeyID, dummySecretAccessKey, ""))
}

// sdkLogger passes the SDK's own log messages, such as warnings about the
// shared config files, to the injected logger.
type sdkLogger struct{ log broker.Logger }

func (l sdkLogger) Logf(classification logging.Classification, format string, v ...interface{}) {
	level := broker.LevelDebug
	if classification == logging.Warn {
		level = broker.LevelWarning
	}
	l.log.Log(level, component, fmt.Sprintf(format, v...), broker.F("broker", component))
}
