# cmake -DAR=ar -DOUT=lib.a -DLIBS=a.a,b.a -P merge_archives.cmake: one
# static archive holding the members of LIBS (an `ar -M` script).
string(REPLACE "," ";" LIBS "${LIBS}")
set(script "CREATE ${OUT}\n")
foreach(lib ${LIBS})
  string(APPEND script "ADDLIB ${lib}\n")
endforeach()
string(APPEND script "SAVE\nEND\n")
file(WRITE ${OUT}.mri "${script}")
execute_process(COMMAND ${AR} -M INPUT_FILE ${OUT}.mri RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${AR} -M failed: ${rc}")
endif()
