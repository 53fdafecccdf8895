#ifndef KW_VERSION_H
#define KW_VERSION_H
#define KW_VERSION_STRING "0.1.0"
#endif
