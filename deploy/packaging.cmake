# Install rules and Debian packages (CPack's DEB generator; docs/packaging.md says why).
#   cmake -S . -B build-pkg -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON
#   cmake --build build-pkg --target ptibusd ptibusctl ptibus_package_files
#   (cd build-pkg && cpack -G DEB)   # ptibus-broker_VERSION_ARCH.deb, ptibus-doc_VERSION_all.deb
# deploy/package-check.sh builds, checks, installs and lints them.
include(GNUInstallDirs)
set(_deb ${CMAKE_CURRENT_LIST_DIR}/debian)
set(_gen ${CMAKE_BINARY_DIR}/deploy)

# Man pages and changelogs are installed gzipped (gzip -9n: reproducible, as lintian asks).
set(_gz_files)
function(pt_gzip src name)
  set(out ${_gen}/${name}.gz)
  add_custom_command(OUTPUT ${out} COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen}
                     COMMAND gzip -9n -c ${src} > ${out} DEPENDS ${src} VERBATIM)
  set(_gz_files ${_gz_files} ${out} PARENT_SCOPE)
endfunction()
pt_gzip(${CMAKE_CURRENT_LIST_DIR}/man/ptibusd.8 ptibusd.8)
pt_gzip(${CMAKE_CURRENT_LIST_DIR}/man/ptibusctl.1 ptibusctl.1)
pt_gzip(${_deb}/changelog changelog)
add_custom_target(ptibus_package_files ALL DEPENDS ${_gz_files})

# ptibus-broker
install(TARGETS ptibusd ptibusctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT broker)
install(FILES ${_gen}/ptibusd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT broker)
install(FILES ${_gen}/ptibusctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT broker)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/ptibusd.service DESTINATION /lib/systemd/system
        COMPONENT broker)
# The example configuration is a conffile (deploy/debian/conffiles): dpkg never
# overwrites an edited copy.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/broker.yaml DESTINATION /etc/ptibus COMPONENT broker)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/broker.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/ptibus
        RENAME broker.yaml.example COMPONENT broker)
# ptibusctl's settings: an example each administrator copies (docs/operations.md).
install(FILES ${CMAKE_CURRENT_LIST_DIR}/ptibusctl.yaml DESTINATION ${CMAKE_INSTALL_DATADIR}/ptibus
        RENAME ptibusctl.yaml.example COMPONENT broker)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-broker COMPONENT broker)

# ptibus-doc
file(GLOB _docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_docs}
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus COMPONENT doc)
install(FILES ${_deb}/copyright ${_gen}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ptibus-doc COMPONENT doc)

# ptibus-adapter waits for the adapter runtime: there is no adapter binary to package yet.
set(CPACK_COMPONENTS_ALL broker doc)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ptibus)
set(CPACK_PACKAGE_VENDOR "ptibus")
set(CPACK_PACKAGE_CONTACT "ptibus maintainers <ptibus@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_BROKER_PACKAGE_NAME ptibus-broker)
set(CPACK_DEBIAN_BROKER_PACKAGE_SECTION net)
set(CPACK_DEBIAN_BROKER_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_BROKER_PACKAGE_RECOMMENDS lmdb-utils)
set(CPACK_DEBIAN_BROKER_PACKAGE_SUGGESTS ptibus-doc)
set(CPACK_COMPONENT_BROKER_DESCRIPTION
    "message broker of a social-insertion partner network\n\
ptibusd routes signed, journaled messages between the partners of a\n\
Pacte Territorial pour l'Insertion (departement, France Travail, CAF, MSA,\n\
Missions Locales) over ZeroMQ CURVE. ptibusctl generates keys, administers\n\
the broker and verifies its journal.")
set(CPACK_DEBIAN_BROKER_PACKAGE_CONTROL_EXTRA ${_deb}/conffiles ${_deb}/postinst ${_deb}/prerm
                                              ${_deb}/postrm)

set(CPACK_DEBIAN_DOC_PACKAGE_NAME ptibus-doc)
set(CPACK_DEBIAN_DOC_PACKAGE_SECTION doc)
set(CPACK_DEBIAN_DOC_PACKAGE_ARCHITECTURE all)
set(CPACK_COMPONENT_DOC_DESCRIPTION
    "documentation of the ptibus message broker\n\
Architecture, protocol, configuration, routing, journal, operations and\n\
threat model of ptibus, in Markdown, under /usr/share/doc/ptibus.")
include(CPack)
