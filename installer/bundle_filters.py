"""What the frozen bundle leaves out of what PyInstaller's Qt hooks collect.

Shared by ``installer/rosace.spec`` (which drops these binaries) and
``benchmarks/bench_bundle_windows.py`` (which works out the Windows bundle's size).
Each entry is a substring of a binary's path inside the bundle.
"""

# Linux-only desktop-integration plug-ins that drag GTK in; Windows has none of them.
# Embedded-Linux Qt platforms (eglfs, evdev/tslib input) and the network plug-ins
# (TLS back-ends, network information) are never used by a desktop program.
QT_UNUSED = ("platformthemes", "libgtk", "libgdk", "egldeviceintegrations", "libQt6EglFS", "libqeglfs",
             "plugins/generic", "plugins/tls", "plugins/networkinformation",
             # Platforms for framebuffers, VNC and Vulkan displays (xcb, wayland, offscreen
             # and minimal stay), and Wayland compositor-buffer and non-desktop shell
             # integrations (xdg-shell and the default decorations stay).
             "platforms/libqvnc", "platforms/libqlinuxfb", "platforms/libqminimalegl", "platforms/libqvkkhrdisplay",
             "wayland-graphics-integration-client/", "wayland-shell-integration/libivi-shell",
             "wayland-shell-integration/libfullscreen-shell", "wayland-shell-integration/libwl-shell",
             "wayland-shell-integration/libqt-shell")
# Windows: Qt's software OpenGL rasterizer (opengl32sw.dll, ~21 MB), which PyInstaller's Qt
# hook always collects, serves QOpenGLWidget/Qt Quick on machines without a GPU driver. ROSACE's
# widgets and pyqtgraph plots paint with QPainter (raster) and never create an OpenGL context.
QT_UNUSED += ("opengl32sw.dll",
              # Windows' experimental Direct2D platform (the "windows" platform is the one used),
              # the virtual keyboard, and image formats ROSACE never reads or writes (PNG is built
              # into Qt; JPEG stays for pyqtgraph's export, SVG and ICO for icons).
              "platforms/qdirect2d", "qtvirtualkeyboardplugin",
              "imageformats/qtiff", "imageformats/libqtiff", "imageformats/qwebp", "imageformats/libqwebp",
              "imageformats/qgif", "imageformats/libqgif", "imageformats/qicns", "imageformats/libqicns",
              "imageformats/qtga", "imageformats/libqtga", "imageformats/qwbmp", "imageformats/libqwbmp",
              "imageformats/qpdf")
