// bench/json_simdjson.cpp — the JSON benchmark's baselines in C++ (simdjson's
// On-Demand API): the same 8-field lines parsed and their fields read into a
// struct; and the hand-written floor of the pipeline (parse, keep country US,
// drop one field, write a JSON line). Only bench_json links it.
#include <simdjson.h>

#include <cstdint>
#include <cstring>
#include <string>

struct event {
    int64_t id, ts;
    double amount, score;
    bool active;
    std::string_view user, country, device;
};

extern "C" size_t dm_bench_simdjson_read(const char *buf, size_t len, uint64_t *checksum)
{
    simdjson::ondemand::parser parser;
    simdjson::padded_string padded(buf, len); // one copy with padding, outside the loop's cost
    const char *base = padded.data();
    size_t n = 0;
    uint64_t sum = 0;
    size_t at = 0;
    while (at < len) {
        const char *nl = static_cast<const char *>(memchr(base + at, '\n', len - at));
        size_t ll = nl ? static_cast<size_t>(nl - (base + at)) : len - at;
        // the rest of the padded buffer is the padding simdjson needs
        auto doc = parser.iterate(base + at, ll, padded.size() + simdjson::SIMDJSON_PADDING - at);
        event e{};
        auto obj = doc.get_object();
        for (auto field : obj) {
            std::string_view k = field.unescaped_key();
            auto v = field.value();
            if (k == "id") e.id = v.get_int64();
            else if (k == "user") e.user = v.get_string();
            else if (k == "country") e.country = v.get_string();
            else if (k == "amount") e.amount = v.get_double();
            else if (k == "ts") e.ts = v.get_int64();
            else if (k == "device") e.device = v.get_string();
            else if (k == "score") e.score = v.get_double();
            else if (k == "active") e.active = v.get_bool();
        }
        sum += static_cast<uint64_t>(e.id) + e.user.size() + e.country.size() + e.device.size() +
               static_cast<uint64_t>(e.amount) + e.active;
        n++;
        at += ll + 1;
    }
    *checksum = sum;
    return n;
}
