// The 3D view: the model standing on a build plate with a millimetre grid, its dimensions,
// a wireframe toggle and overhang shading. Shows exactly the GLB file the server wrote: a print
// GLB at its true size (metres in the file), a raw one scaled to a given size.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';

const OVERHANG_COS = Math.cos(THREE.MathUtils.degToRad(45));

export class Viewer {
  constructor(el) {
    this.el = el;
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x0b0d18);
    this.camera = new THREE.PerspectiveCamera(40, 1, 0.1, 10000);
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(window.devicePixelRatio);
    el.appendChild(this.renderer.domElement);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = true;
    this.controls.addEventListener('change', () => this.render());
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x334466, 1.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.5);
    sun.position.set(1, 2, 1.5);
    this.scene.add(sun);
    this.sizeMm = 100;
    this.wireframe = false;
    this.overhangs = true;
    this.model = null;
    this.plate = null;
    new ResizeObserver(() => this.resize()).observe(el);
    this.resize();
  }

  // Draws one frame, on the next animation frame, when something changed. A continuous loop
  // kept a CPU core (software WebGL) or a laptop's GPU busy redrawing a still picture.
  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      // While the orbit's damping settles, this fires 'change', which asks for the next frame.
      this.controls.update();
      this.renderer.render(this.scene, this.camera);
    });
  }

  resize() {
    const w = this.el.clientWidth, h = this.el.clientHeight;
    if (!w || !h) return;
    this.renderer.setSize(w, h);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  // `metres`: the file is in metres (print files), shown at its true size in mm; otherwise the
  // largest side is scaled to `sizeMm` (default: the preview size).
  async load(url, { metres = false, sizeMm = null } = {}) {
    const gltf = await new GLTFLoader().loadAsync(url);
    this.metres = metres;
    if (sizeMm) this.sizeMm = sizeMm;
    if (this.model) this.scene.remove(this.model);
    this.model = gltf.scene;
    this.model.traverse((o) => {
      if (o.isMesh) {
        o.geometry.computeVertexNormals();
        o.material = new THREE.MeshStandardMaterial({ color: 0xb8c4dd, roughness: 0.6, metalness: 0.05, vertexColors: true });
      }
    });
    this.scene.add(this.model);
    this.layout();
    return this.dimensions();
  }

  // Scales the model to millimetres and stands it centred on the plate.
  layout() {
    if (!this.model) return;
    this.model.scale.setScalar(1);
    this.model.position.set(0, 0, 0);
    let box = new THREE.Box3().setFromObject(this.model);
    const size = box.getSize(new THREE.Vector3());
    this.model.scale.setScalar(this.metres ? 1000 : this.sizeMm / Math.max(size.x, size.y, size.z, 1e-9));
    box = new THREE.Box3().setFromObject(this.model);
    const center = box.getCenter(new THREE.Vector3());
    this.model.position.set(-center.x, -box.min.y, -center.z);
    this.applyShading();
    const extent = Math.max(...box.getSize(new THREE.Vector3()).toArray());
    this.buildPlate(extent);
    const d = extent * 1.8;
    this.camera.position.set(d * 0.8, d * 0.6, d);
    this.camera.near = extent / 100;
    this.camera.far = extent * 100;
    this.camera.updateProjectionMatrix();
    this.controls.target.set(0, extent / 3, 0);
    this.controls.update();
  }

  buildPlate(extent) {
    if (this.plate) this.scene.remove(this.plate);
    const side = Math.ceil((extent * 1.6) / 10) * 10;
    this.plate = new THREE.Group();
    const grid = new THREE.GridHelper(side, side / 10, 0x5066aa, 0x2a3158);
    this.plate.add(grid);
    const base = new THREE.Mesh(new THREE.PlaneGeometry(side, side), new THREE.MeshBasicMaterial({ color: 0x151a30 }));
    base.rotation.x = -Math.PI / 2;
    base.position.y = -0.05;
    this.plate.add(base);
    this.scene.add(this.plate);
  }

  // Colours downward-facing surfaces steeper than 45 degrees, which need supports when printed.
  applyShading() {
    const normal = new THREE.Vector3();
    this.model.traverse((o) => {
      if (!o.isMesh) return;
      o.material.wireframe = this.wireframe;
      const g = o.geometry, n = g.attributes.normal;
      const colors = new Float32Array(n.count * 3);
      const m = new THREE.Matrix3().getNormalMatrix(o.matrixWorld);
      for (let i = 0; i < n.count; i++) {
        normal.fromBufferAttribute(n, i).applyMatrix3(m).normalize();
        const over = this.overhangs && normal.y < -OVERHANG_COS;
        colors.set(over ? [0.95, 0.35, 0.35] : [0.72, 0.77, 0.87], i * 3);
      }
      g.setAttribute('color', new THREE.BufferAttribute(colors, 3));
    });
    this.render();
  }

  dimensions() {
    if (!this.model) return null;
    const s = new THREE.Box3().setFromObject(this.model).getSize(new THREE.Vector3());
    return { x: s.x, y: s.z, z: s.y };
  }

  setWireframe(on) { this.wireframe = on; if (this.model) this.applyShading(); }
  setOverhangs(on) { this.overhangs = on; if (this.model) this.applyShading(); }
  // Only a raw mesh (model units) can be resized; a print mesh has its size.
  setSize(mm) { this.sizeMm = mm; if (!this.metres) this.layout(); return this.dimensions(); }
}
