package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cello-framework/cello/core/broker"
)

// This package returns only the sentinel errors of package broker. translate
// is the one place where SDK errors become them.

// queueMissingCodes are the error codes that mean "no such queue": the JSON
// protocol's QueueDoesNotExist and the older query protocol's code, which
// some SQS-compatible servers still send.
var queueMissingCodes = map[string]bool{
	"QueueDoesNotExist":                       true,
	"AWS.SimpleQueueService.NonExistentQueue": true,
}

// authCodes are the error codes SQS returns for rejected credentials.
var authCodes = map[string]bool{
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"ExpiredToken":                true,
	"InvalidClientTokenId":        true,
	"InvalidSecurity":             true,
	"MissingAuthenticationToken":  true,
	"SignatureDoesNotMatch":       true,
	"UnrecognizedClientException": true,
}

// translate wraps err from the SQS call op on the named queue with the
// matching broker sentinel: ErrTimeout, ErrNotFound, ErrConnection, or
// fallback for any other error the server returned. A nil fallback leaves
// such errors without a sentinel. A cancelled call keeps context.Canceled.
func translate(err error, op, queueName string, fallback error) error {
	var apiErr smithy.APIError
	var netErr net.Error
	var sendErr *smithyhttp.RequestSendError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: sqs %s on queue %q: %w", broker.ErrTimeout, op, queueName, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("sqs %s on queue %q cancelled: %w", op, queueName, err)
	case isQueueMissing(err):
		return fmt.Errorf("%w: queue %q does not exist (sqs %s): %w", broker.ErrNotFound, queueName, op, err)
	case errors.As(err, &apiErr) && authCodes[apiErr.ErrorCode()]:
		return fmt.Errorf("%w: sqs %s on queue %q: credentials rejected, check access_key_id, profile "+
			"or the AWS environment variables: %w", broker.ErrConnection, op, queueName, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: sqs %s on queue %q: %w", broker.ErrTimeout, op, queueName, err)
	case errors.As(err, &sendErr):
		return fmt.Errorf("%w: sqs %s on queue %q: %w", broker.ErrConnection, op, queueName, err)
	case fallback != nil:
		return fmt.Errorf("%w: sqs %s on queue %q: %w", fallback, op, queueName, err)
	}
	return fmt.Errorf("sqs %s on queue %q failed: %w", op, queueName, err)
}

// isQueueMissing reports whether an SDK error means that the queue does not
// exist.
func isQueueMissing(err error) bool {
	var missing *types.QueueDoesNotExist
	if errors.As(err, &missing) {
		return true
	}
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && queueMissingCodes[apiErr.ErrorCode()]
}

// isNotFound reports whether err, already translated, is broker.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, broker.ErrNotFound) }

// entryError describes one failed entry of a batch call.
func entryError(sentinel error, op, queueName string, e types.BatchResultErrorEntry) error {
	code := "unknown error"
	if e.Code != nil {
		code = *e.Code
	}
	message := ""
	if e.Message != nil {
		message = ": " + *e.Message
	}
	if queueMissingCodes[code] {
		sentinel = broker.ErrNotFound
	}
	return fmt.Errorf("%w: sqs %s on queue %q: %s%s", sentinel, op, queueName, code, message)
}
