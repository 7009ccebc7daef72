/* The rule matcher's C helpers: where a text's wanted tokens stand, in one pass over its
 * characters (token_places), and a named tuple made without tuple.__new__'s wrapper (new_tuple).
 *
 * token_places(low, words, wanted) walks `low` (a lower-cased text) once, finds its tokens
 * (maximal runs of two or more word characters: what monitor.text.tokenize_lower splits it
 * into, and `words` is) and returns, for each token in `wanted`, where it stands:
 *
 *   {token: [index, offset, word, index, offset, word, ...]}
 *
 * index among the tokens, offset in `low`, word: index among all runs of word characters (as
 * `\w+` finds them, one-character words included: what `near` counts). One flat list a token:
 * a tuple per occurrence would cost more than the lookup it serves. Or None when the runs do not
 * line up with `words` (a caller's tokens of another text): the caller then searches the text
 * instead. A word character is what `\w` matches in a str pattern (str.isalnum() or "_", as
 * monitor.text.is_word_char). The rule matcher calls it once per long field instead of searching
 * the text once per term (monitor/matchnodes.py, Context.places).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* ASCII code -> is it a word character; filled when the module loads. */
static unsigned char ascii_word[128];

#define IS_WORD(ch) ((ch) < 128 ? ascii_word[(ch)] : Py_UNICODE_ISALNUM(ch))

/* Append one number to a list. 0 on success, -1 on error. */
static int
append(PyObject *list, Py_ssize_t value)
{
    PyObject *number = PyLong_FromSsize_t(value);
    if (number == NULL) {
        return -1;
    }
    int failed = PyList_Append(list, number);
    Py_DECREF(number);
    return failed;
}

/* Append index, offset and run to places[word], creating the list. 0 on success, -1 on error. */
static int
note(PyObject *places, PyObject *word, Py_ssize_t index, Py_ssize_t offset, Py_ssize_t run)
{
    PyObject *at = PyDict_GetItemWithError(places, word); /* borrowed */
    if (at == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
        at = PyList_New(0);
        if (at == NULL) {
            return -1;
        }
        int failed = PyDict_SetItem(places, word, at);
        Py_DECREF(at); /* the dictionary holds it */
        if (failed) {
            return -1;
        }
    }
    if (append(at, index) < 0 || append(at, offset) < 0) {
        return -1;
    }
    return append(at, run);
}

/* One pass's state: the tokens seen so far and where the wanted ones stand. */
typedef struct {
    PyObject *words, *wanted, *places;
    Py_ssize_t n_words, k, run; /* tokens, and runs of word characters, seen so far */
    /* A filter on `wanted`: bit (length % 64) of lengths[first character % 128] is set for each
     * wanted token, so most other tokens are passed over without a set lookup. */
    uint64_t lengths[128];
} Pass;

static int
fill_filter(Pass *pass)
{
    PyObject *iter = PyObject_GetIter(pass->wanted);
    if (iter == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iter)) != NULL) {
        if (PyUnicode_Check(item) && PyUnicode_GET_LENGTH(item) > 0) {
            Py_UCS4 first = PyUnicode_READ_CHAR(item, 0);
            pass->lengths[first % 128] |= (uint64_t)1 << (PyUnicode_GET_LENGTH(item) % 64);
        }
        Py_DECREF(item);
    }
    Py_DECREF(iter);
    return PyErr_Occurred() ? -1 : 0;
}

/* A token at [i, j) starting with `first`: 0 to go on, 1 when the tokens do not line up with
 * `words`, -1 on error. */
static int
token(Pass *pass, Py_ssize_t i, Py_ssize_t j, Py_UCS4 first)
{
    if (pass->k >= pass->n_words) {
        return 1;
    }
    PyObject *word = PyList_GET_ITEM(pass->words, pass->k);
    if (!PyUnicode_Check(word) || PyUnicode_GET_LENGTH(word) != j - i) {
        return 1;
    }
    if (!((pass->lengths[first % 128] >> ((j - i) % 64)) & 1)) {
        pass->k++;
        return 0;
    }
    int found = PySet_Contains(pass->wanted, word);
    if (found < 0 || (found && note(pass->places, word, pass->k, i, pass->run) < 0)) {
        return -1;
    }
    pass->k++;
    return 0;
}

/* The runs of word characters of one string representation (UCS1, UCS2, UCS4); the tokens are
 * those of two or more. */
#define SCAN(TYPE)                                                          \
    do {                                                                    \
        const TYPE *text = (const TYPE *)data;                              \
        Py_ssize_t i = 0;                                                   \
        while (i < n) {                                                     \
            if (!IS_WORD(text[i])) {                                        \
                i++;                                                        \
                continue;                                                   \
            }                                                               \
            Py_ssize_t j = i + 1;                                           \
            while (j < n && IS_WORD(text[j])) {                             \
                j++;                                                        \
            }                                                               \
            if (j - i > 1 && (status = token(&pass, i, j, text[i])) != 0) { \
                break;                                                      \
            }                                                               \
            pass.run++;                                                     \
            i = j;                                                          \
        }                                                                   \
    } while (0)

static PyObject *
token_places(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "token_places(low, words, wanted) takes 3 arguments");
        return NULL;
    }
    PyObject *low = args[0], *words = args[1], *wanted = args[2];
    if (!PyUnicode_Check(low) || !PyList_Check(words) || !PyAnySet_Check(wanted)) {
        PyErr_SetString(PyExc_TypeError, "token_places(str, list[str], set[str])");
        return NULL;
    }
    Pass pass = {words, wanted, PyDict_New(), PyList_GET_SIZE(words), 0, 0, {0}};
    if (pass.places == NULL) {
        return NULL;
    }
    if (fill_filter(&pass) < 0) {
        Py_DECREF(pass.places);
        return NULL;
    }
    const void *data = PyUnicode_DATA(low);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(low);
    int status = 0;
    switch (PyUnicode_KIND(low)) {
    case PyUnicode_1BYTE_KIND:
        SCAN(Py_UCS1);
        break;
    case PyUnicode_2BYTE_KIND:
        SCAN(Py_UCS2);
        break;
    default:
        SCAN(Py_UCS4);
        break;
    }
    if (status < 0) {
        Py_DECREF(pass.places);
        return NULL;
    }
    if (status > 0 || pass.k != pass.n_words) {
        Py_DECREF(pass.places);
        Py_RETURN_NONE;
    }
    return pass.places;
}

/* new_tuple(cls, *items): an instance of `cls`, a subclass of tuple (a named tuple), holding
 * `items`, as tuple.__new__(cls, items) makes it, without the argument tuple, the wrapper's
 * checks and the copy: the matcher makes one per match and per piece of evidence. */
static PyObject *
new_tuple(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || !PyType_Check(args[0]) ||
        !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "new_tuple(cls, *items): cls must subclass tuple");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    PyObject *self = type->tp_alloc(type, nargs - 1);
    if (self == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(self, i - 1, args[i]);
    }
    return self;
}

static PyMethodDef methods[] = {
    {"new_tuple", (PyCFunction)(void (*)(void))new_tuple, METH_FASTCALL,
     "new_tuple(cls, *items) -> cls instance holding items"},
    {"token_places", (PyCFunction)(void (*)(void))token_places, METH_FASTCALL,
     "token_places(low, words, wanted) -> {token: [index, offset, word, ...]} | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The rule matcher's C helpers.", -1, methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    for (int c = 0; c < 128; c++) {
        ascii_word[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_';
    }
    return PyModule_Create(&module);
}
