/* pt_interop: converts one ptibus message between proto3 JSON (libptibus/pjson) and the
 * protobuf wire format (protobuf-c), stdin to stdout, so that tests/interop/interop.py
 * can compare both with the reference implementation (python3-protobuf).
 *   pt_interop json2bin TYPE < message.json > message.bin
 *   pt_interop bin2json TYPE < message.bin > message.json
 * TYPE is a full message name such as ptibus.v1.Envelope. Exit 0 on success, 1 when
 * the input is refused (the error, with its path, on stderr), 2 on usage errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "pjson.h"
#include "ptibus/v1/beneficiary.pb-c.h"
#include "ptibus/v1/common.pb-c.h"
#include "ptibus/v1/orientation.pb-c.h"
#include "ptibus/v1/referral.pb-c.h"
#include "ptibus/v1/sanction.pb-c.h"
#include "ptibus/v1/training.pb-c.h"

#define INTEROP_MAX_INPUT (16 * 1024 * 1024)

static const ProtobufCMessageDescriptor *const interop_types[] = {
    &ptibus__v1__person_ref__descriptor,
    &ptibus__v1__agent__descriptor,
    &ptibus__v1__org_ref__descriptor,
    &ptibus__v1__orientation_refusal__descriptor,
    &ptibus__v1__orientation__descriptor,
    &ptibus__v1__reorientation_request__descriptor,
    &ptibus__v1__reorientation_answer__descriptor,
    &ptibus__v1__target_service__descriptor,
    &ptibus__v1__referral__descriptor,
    &ptibus__v1__referral_status__descriptor,
    &ptibus__v1__sanction__descriptor,
    &ptibus__v1__funder__descriptor,
    &ptibus__v1__training_offer__descriptor,
    &ptibus__v1__beneficiary_event__descriptor,
    &ptibus__v1__envelope__descriptor,
    &ptibus__v1__hello__descriptor,
    &ptibus__v1__welcome__descriptor,
    &ptibus__v1__publish__descriptor,
    &ptibus__v1__publish_ack__descriptor,
    &ptibus__v1__nack__descriptor,
    &ptibus__v1__deliver__descriptor,
    &ptibus__v1__deliver_ack__descriptor,
    &ptibus__v1__credit__descriptor,
    &ptibus__v1__heartbeat__descriptor,
    &ptibus__v1__receipt__descriptor,
    &ptibus__v1__receipt_request__descriptor,
    &ptibus__v1__frame__descriptor,
    &google__protobuf__timestamp__descriptor,
};

static const ProtobufCMessageDescriptor *
type_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof interop_types / sizeof interop_types[0]; i++)
        if (strcmp(interop_types[i]->name, name) == 0)
            return interop_types[i];
    return NULL;
}

/* Reads all of stdin, at most INTEROP_MAX_INPUT bytes; caller owns *out (free()).
 * Returns 0 or -1. */
static int
read_stdin(uint8_t **out, size_t *len)
{
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, got;
    do {
        if (n == cap) {
            uint8_t *nb = cap < INTEROP_MAX_INPUT ? realloc(buf, cap ? cap * 2 : 65536) : NULL;
            if (nb == NULL) {
                free(buf);
                return -1;
            }
            buf = nb;
            cap = cap ? cap * 2 : 65536;
        }
        got = fread(buf + n, 1, cap - n, stdin);
        n += got;
    } while (got > 0);
    if (ferror(stdin)) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int
json2bin(const ProtobufCMessageDescriptor *desc, const uint8_t *in, size_t len, pt_error_t *err)
{
    ProtobufCMessage *m;
    uint8_t *bin;
    size_t n;
    int rc = pjson_parse(desc, (const char *)in, len, INTEROP_MAX_INPUT, &m, err);
    if (rc != 0)
        return rc;
    rc = codec_pack(m, INTEROP_MAX_INPUT, &bin, &n, err);
    codec_free(&m);
    if (rc != 0)
        return rc;
    fwrite(bin, 1, n, stdout);
    free(bin);
    return 0;
}

static int
bin2json(const ProtobufCMessageDescriptor *desc, const uint8_t *in, size_t len, pt_error_t *err)
{
    ProtobufCMessage *m;
    char *text;
    int rc = codec_unpack(desc, in, len, INTEROP_MAX_INPUT, &m, err);
    if (rc != 0)
        return rc;
    rc = pjson_to_string(m, &text, err);
    codec_free(&m);
    if (rc != 0)
        return rc;
    printf("%s\n", text);
    free(text);
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(const ProtobufCMessageDescriptor *, const uint8_t *, size_t, pt_error_t *);
    } commands[] = {{"json2bin", json2bin}, {"bin2json", bin2json}};
    const ProtobufCMessageDescriptor *desc = argc == 3 ? type_lookup(argv[2]) : NULL;
    for (size_t i = 0; desc != NULL && i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        uint8_t *in;
        size_t len;
        pt_error_t err;
        if (read_stdin(&in, &len) != 0) {
            fprintf(stderr, "pt_interop: cannot read stdin (or over %d bytes)\n",
                    INTEROP_MAX_INPUT);
            return 1;
        }
        int rc = commands[i].run(desc, in, len, &err);
        free(in);
        if (rc != 0)
            fprintf(stderr, "pt_interop: %s\n", err.msg);
        return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
    }
    fprintf(stderr, "usage: pt_interop json2bin|bin2json TYPE < in > out\n"
                    "TYPE is a full message name, e.g. ptibus.v1.Envelope\n");
    return 2;
}
