#ifndef CELLO_BRIDGE_H
#define CELLO_BRIDGE_H
#include <stdint.h>
#include <stdlib.h>

/* The shape every export returns; see the package documentation. */
typedef struct {
	int32_t code;
	uint64_t id;
	void *data;
	int64_t len;
} cello_result;

#endif
