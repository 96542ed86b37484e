// Asio is built once, here, instead of in every translation unit (BOOST_ASIO_SEPARATE_COMPILATION
// is set for the whole core library in CMakeLists.txt). Keeps incremental builds fast on 2 cores.
#include <boost/asio/impl/src.hpp>
