/* The near-duplicate signature's arithmetic in one pass (monitor/dedupe.py, signature).
 *
 * minhashes(words, positions, seeds, limits) -> tuple of ints, one per seed:
 *
 *   h[k]     = zlib.crc32(words[k])                        (each word a bytes object)
 *   gram[i]  = mix(h[i] * positions[0] ^ h[i+1] * positions[1] ^ ...)   (the word shingles;
 *              with fewer words than positions, one gram of all of them)
 *   out[s]   = min(mix(gram[i] ^ seeds[s]) for i < limits[s])
 *
 * mix is splitmix64's finaliser; all arithmetic is on unsigned 64-bit integers and wraps, as
 * numpy's uint64 does. This is exactly what dedupe's numpy code computes (dedupe._hash_array and
 * dedupe._minhash, which stay the reference and the fallback where the project was installed
 * without compiling), at a fraction of its cost: a few hundred words make arrays so small that
 * numpy's per-call overhead was most of a signature's time (docs/benchmarks.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define MAX_POSITIONS 8
#define MAX_SEEDS 8

/* CRC-32 as zlib computes it (reflected, polynomial 0xEDB88320); filled when the module loads. */
static uint32_t crc_table[256];

static uint32_t
crc32_of(const unsigned char *data, Py_ssize_t size)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < size; i++) {
        crc = crc_table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFu;
}

static inline uint64_t
mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* A tuple of 1..max ints that fit 64 bits unsigned into out; its length, or -1 with an error. */
static Py_ssize_t
u64_tuple(PyObject *tuple, uint64_t *out, Py_ssize_t max, const char *what)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) < 1 || PyTuple_GET_SIZE(tuple) > max) {
        PyErr_Format(PyExc_TypeError, "minhashes: %s must be a tuple of 1 to %zd ints", what, max);
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyLong_Check(item)) {
            PyErr_Format(PyExc_TypeError, "minhashes: %s must be a tuple of ints", what);
            return -1;
        }
        out[i] = PyLong_AsUnsignedLongLong(item);
        if (out[i] == (uint64_t)-1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return n;
}

static PyObject *
minhashes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t positions[MAX_POSITIONS], seeds[MAX_SEEDS], limits[MAX_SEEDS];
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "minhashes(words, positions, seeds, limits)");
        return NULL;
    }
    PyObject *words = args[0];
    if (!PyList_Check(words) || PyList_GET_SIZE(words) == 0) {
        PyErr_SetString(PyExc_TypeError, "minhashes: words must be a non-empty list of bytes");
        return NULL;
    }
    Py_ssize_t width = u64_tuple(args[1], positions, MAX_POSITIONS, "positions");
    Py_ssize_t n_seeds = width < 0 ? -1 : u64_tuple(args[2], seeds, MAX_SEEDS, "seeds");
    if (n_seeds < 0 || u64_tuple(args[3], limits, MAX_SEEDS, "limits") < 0) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(args[3]) != n_seeds) {
        PyErr_SetString(PyExc_ValueError, "minhashes: one limit per seed");
        return NULL;
    }
    for (Py_ssize_t s = 0; s < n_seeds; s++) {
        if (limits[s] == 0) {
            PyErr_SetString(PyExc_ValueError, "minhashes: a limit must be at least 1");
            return NULL;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(words);
    uint64_t *h = PyMem_Malloc(sizeof(uint64_t) * (size_t)n);
    if (h == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *word = PyList_GET_ITEM(words, k);
        if (!PyBytes_Check(word)) {
            PyMem_Free(h);
            PyErr_SetString(PyExc_TypeError, "minhashes: words must be a non-empty list of bytes");
            return NULL;
        }
        h[k] = crc32_of((const unsigned char *)PyBytes_AS_STRING(word), PyBytes_GET_SIZE(word));
    }
    /* In place: gram i reads h[i .. i + width - 1], and no later gram reads h[i]. */
    Py_ssize_t grams = n < width ? 1 : n - width + 1;
    Py_ssize_t span = n < width ? n : width;
    for (Py_ssize_t i = 0; i < grams; i++) {
        uint64_t g = 0;
        for (Py_ssize_t j = 0; j < span; j++) {
            g ^= h[i + j] * positions[j];
        }
        h[i] = mix(g);
    }
    PyObject *out = PyTuple_New(n_seeds);
    if (out == NULL) {
        PyMem_Free(h);
        return NULL;
    }
    for (Py_ssize_t s = 0; s < n_seeds; s++) {
        Py_ssize_t end = limits[s] < (uint64_t)grams ? (Py_ssize_t)limits[s] : grams;
        uint64_t least = UINT64_MAX;
        for (Py_ssize_t i = 0; i < end; i++) {
            uint64_t v = mix(h[i] ^ seeds[s]);
            least = v < least ? v : least;
        }
        PyObject *value = PyLong_FromUnsignedLongLong(least);
        if (value == NULL) {
            Py_DECREF(out);
            PyMem_Free(h);
            return NULL;
        }
        PyTuple_SET_ITEM(out, s, value);
    }
    PyMem_Free(h);
    return out;
}

static PyMethodDef methods[] = {
    {"minhashes", (PyCFunction)(void (*)(void))minhashes, METH_FASTCALL,
     "minhashes(words, positions, seeds, limits) -> (min hash per seed, ...)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_shingle", "The near-duplicate signature's arithmetic.", -1, methods,
};

PyMODINIT_FUNC
PyInit__shingle(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) {
            c = c & 1u ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[b] = c;
    }
    return PyModule_Create(&module);
}
